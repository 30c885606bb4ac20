"""The Grafana dashboard asks only for metrics, labels and span attributes that PixSim emits.

Every query in deploy/grafana/dashboards/pixsim.json (panels and template variables) is parsed; each
metric name must be the Prometheus name of an instrument in `pixsim_runtime.observability.METRICS`,
each label one of that instrument's `METRIC_LABELS`, and each TraceQL attribute one of
`SPAN_ATTRIBUTES`. The lead's emission test proves a real generation emits every declared name, so
together they prove the dashboard queries only what exists.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from pixsim_runtime import observability as names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "pixsim.json"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "datasources.yaml"

#: How the Collector's Prometheus exporter names each OpenTelemetry instrument: dots become
#: underscores, counters gain `_total`, a histogram in seconds gains `_seconds` and is queried
#: through its `_bucket`/`_count`/`_sum` series.
PROMETHEUS_SERIES = {
    names.METRIC_GENERATIONS: {"pixsim_generations_total"},
    names.METRIC_PROVIDER_CALL_DURATION: {
        f"pixsim_provider_call_duration_seconds_{s}" for s in ("bucket", "count", "sum")
    },
    names.METRIC_CONSUMER_PENDING: {"pixsim_consumer_pending"},
    names.METRIC_CREDITS: {"pixsim_credits_total"},
}
HISTOGRAM_LABELS = {"le"}  # added by Prometheus to every _bucket series
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "histogram_quantile",
    "label_values",
    "abs",
    "clamp_min",
    "clamp_max",
    "vector",
    "scalar",
    "time",
    "sort",
    "sort_desc",
    "avg_over_time",
    "max_over_time",
    "inf",
    "nan",
}
TRACEQL_INTRINSICS = {"name", "duration", "status", "kind", "rootName", "rootServiceName", "traceDuration"}
TRACEQL_RESOURCE = {"service.name"}  # set by pixsim_runtime.telemetry on every span


def series_to_metric() -> dict[str, str]:
    return {series: metric for metric, all_series in PROMETHEUS_SERIES.items() for series in all_series}


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression uses."""
    expr = re.sub(r"\$\{?\w+(?::\w+)?\}?", "", expr)  # Grafana variables ($provider, $__rate_interval)
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)\s*\"", matchers))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {label.strip() for label in grouping.split(",") if label.strip()}
    if m := re.fullmatch(r"\s*label_values\(\s*([\w:]+)\s*,\s*(\w+)\s*\)\s*", expr):
        return {m.group(1)}, labels | {m.group(2)}
    bare = re.sub(r"\"[^\"]*\"", "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", bare)
    identifiers = set(re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)", bare))
    return {i for i in identifiers if i not in PROMQL_WORDS}, labels


def traceql_attributes(query: str) -> tuple[set[str], set[str], set[str]]:
    """(span attributes, resource attributes, intrinsics) a TraceQL query uses."""
    query = re.sub(r"\$\{?\w+(?::\w+)?\}?", "", query)
    spans = set(re.findall(r'\bspan\."([^"]+)"', query)) | set(re.findall(r"\bspan\.([\w.]+)", query))
    resources = set(re.findall(r'\bresource\."([^"]+)"', query)) | set(
        re.findall(r"\bresource\.([\w.]+)", query)
    )
    bare = re.sub(r"\"[^\"]*\"", "", re.sub(r"\b(?:span|resource)\.(\"[^\"]+\"|[\w.]+)", "", query))
    intrinsics = set(re.findall(r"(?<![\w.])([A-Za-z_]\w*)\s*(?:=~|!~|!=|>=|<=|=|>|<)", bare))
    return spans, resources, intrinsics


def problems_in(dashboard: dict) -> list[str]:
    """Every name the dashboard uses that the code does not emit."""
    allowed_series, found = series_to_metric(), []
    for where, target in _targets(dashboard):
        if "expr" in target or target.get("kind") == "promql":
            metrics, labels = promql_names(target.get("expr") or target.get("query", ""))
            if not metrics:
                found.append(f"{where}: no metric in {target}")
            unknown = metrics - set(allowed_series)
            found += [
                f"{where}: metric {m} is not emitted (known: {sorted(allowed_series)})"
                for m in sorted(unknown)
            ]
            declared = set().union(
                *(set(names.METRIC_LABELS[allowed_series[m]]) for m in metrics - unknown), set()
            )
            if any(m.endswith("_bucket") for m in metrics):
                declared |= HISTOGRAM_LABELS
            found += [
                f"{where}: label {label} is not one of {sorted(declared)}"
                for label in sorted(labels - declared)
            ]
        elif "query" in target:
            spans, resources, intrinsics = traceql_attributes(target["query"])
            if not spans | resources:
                found.append(f"{where}: the trace query uses no PixSim attribute: {target['query']}")
            found += [
                f"{where}: span attribute {a} is not emitted"
                for a in sorted(spans - set(names.SPAN_ATTRIBUTES))
            ]
            found += [
                f"{where}: resource attribute {a} is not set" for a in sorted(resources - TRACEQL_RESOURCE)
            ]
            found += [
                f"{where}: {i} is no TraceQL intrinsic" for i in sorted(intrinsics - TRACEQL_INTRINSICS)
            ]
    return found


def _targets(dashboard: dict):
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            yield f"panel {panel.get('title')!r}", target
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            yield (
                f"variable {variable['name']}",
                {"expr": query["query"] if isinstance(query, dict) else query},
            )


def _panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_the_dashboard_only_queries_names_the_code_emits(dashboard: dict) -> None:
    assert problems_in(dashboard) == []


def test_the_prometheus_naming_table_covers_every_declared_metric() -> None:
    # A new instrument in observability.py must be given its Prometheus name here before a panel can use it.
    assert set(PROMETHEUS_SERIES) == set(names.METRICS)
    assert set(names.METRIC_LABELS) == set(names.METRICS)


def test_the_dashboard_answers_the_issue_questions(dashboard: dict) -> None:
    exprs = " ".join(t.get("expr", "") for _, t in _targets(dashboard))
    queries = " ".join(t.get("query", "") for _, t in _targets(dashboard) if "expr" not in t)
    assert "sum by (status)" in exprs and "sum by (provider, status)" in exprs  # jobs by status and provider
    assert "by (stream, consumer) (pixsim_consumer_pending)" in exprs  # queue lag per consumer
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.95," in exprs  # provider latency
    assert "sum by (credit_type, kind)" in exprs  # credits by type
    assert (
        f'span."{names.ATTR_GENERATION_ID}" = "$generation_id"' in queries
    )  # where did this job spend its time
    # Span-name filters must match the provider-call spans the code names `provider.<call>`.
    for pattern in re.findall(r'\bname =~ "([^"]+)"', queries):
        assert re.fullmatch(pattern, f"{names.PROVIDER_SPAN_PREFIX}execute"), pattern


def test_the_checker_catches_names_the_code_does_not_emit() -> None:
    bad = {
        "panels": [
            {"title": "unknown metric", "targets": [{"expr": "sum(rate(pixsim_jobs_total[5m]))"}]},
            {
                "title": "unknown label",
                "targets": [{"expr": 'sum by (region) (pixsim_consumer_pending{tenant="a"})'}],
            },
            {
                "title": "le on a counter",
                "targets": [{"expr": "sum by (le) (rate(pixsim_credits_total[5m]))"}],
            },
            {"title": "unknown attribute", "targets": [{"query": '{ span."pixsim.job.id" = "x" }'}]},
        ]
    }
    found = "\n".join(problems_in(bad))
    for expected in (
        "metric pixsim_jobs_total",
        "label region",
        "label tenant",
        "label le",
        "span attribute pixsim.job.id",
    ):
        assert expected in found


def test_every_datasource_the_dashboard_uses_is_provisioned(dashboard: dict) -> None:
    provisioned = {d["type"] for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    variables = {v["query"] for v in dashboard["templating"]["list"] if v["type"] == "datasource"}
    used = {p["datasource"]["type"] for p in _panels(dashboard["panels"]) if "datasource" in p}
    assert used <= variables <= provisioned == {"prometheus", "tempo"}
