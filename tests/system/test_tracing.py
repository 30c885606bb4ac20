"""One trace follows a job from the HTTP call through every service and provider call to billing,
and the spans and metrics a dashboard queries are really emitted."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import SpanKind
from pixsim_runtime import observability as names
from support import create, wait_for, wait_ledger

pytestmark = pytest.mark.system


async def _finished_generation(pipeline, prompt: str) -> tuple[dict, list]:
    pipeline.spans.clear()
    created = await create(pipeline.api, {"prompt": prompt, "duration": 1})
    await wait_for(pipeline.api, created["id"])
    await wait_ledger(pipeline.servers.mongo_url, pipeline.db_name, created["id"], {"reserved", "charged"})
    for _ in range(
        200
    ):  # the last consumer spans end just after their acks; the server span after its response
        spans = list(pipeline.spans.get_finished_spans())
        if any(
            s.name == "pixsim.generations.*.completed process"
            and s.attributes.get(names.ATTR_GENERATION_ID) == created["id"]
            for s in spans
        ):
            break
        await asyncio.sleep(0.05)
    return created, spans


async def test_one_trace_from_post_to_billing(pipeline):
    created, spans = await _finished_generation(pipeline, "traced fox")
    gid = created["id"]
    # the HTTP call: its server span or, where that one has not been exported yet, its receive span
    # (a child of the server span, in the same trace)
    roots = [s for s in spans if s.kind is SpanKind.SERVER and s.name == "POST /api/v1/generations"] or [
        s for s in spans if s.name == "POST /api/v1/generations http receive"
    ]
    assert roots, [s.name for s in spans]
    trace_id = roots[-1].context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    names_ = [s.name for s in in_trace]

    def has(kind: SpanKind, name: str, **attrs: str) -> bool:
        return any(
            s.kind is kind and s.name == name and all(s.attributes.get(k) == v for k, v in attrs.items())
            for s in in_trace
        )

    gen = {names.ATTR_GENERATION_ID: gid}
    assert has(SpanKind.PRODUCER, "pixsim.generations.*.requested publish"), names_
    assert has(SpanKind.CONSUMER, "pixsim.generations.*.requested process", **gen), names_  # dispatcher
    assert has(SpanKind.INTERNAL, "provider.execute", **{names.ATTR_PROVIDER_ID: "sim"}), names_
    assert any(s.kind is SpanKind.CLIENT and s.name == "POST" for s in in_trace), names_  # the HTTP call
    assert has(SpanKind.CONSUMER, "pixsim.generations.*.submitted process", **gen), names_  # poller
    assert has(SpanKind.INTERNAL, "provider.check_status"), names_
    assert has(SpanKind.CONSUMER, "pixsim.credits.sim.charged process", **gen), names_  # billing
    assert has(
        SpanKind.CONSUMER, "pixsim.generations.*.completed process", **{**gen, names.ATTR_STATUS: "completed"}
    )
    assert not any(gid in s.name for s in spans), "ids belong in attributes, not in span names"


def _metric_points(pipeline) -> dict[str, list]:
    data = pipeline.metrics.get_metrics_data()
    found: dict[str, list] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


async def test_every_declared_metric_and_span_attribute_is_emitted(pipeline):
    _, spans = await _finished_generation(pipeline, "measured fox")
    emitted_attributes = {key for s in spans for key in (s.attributes or {})}
    assert set(names.SPAN_ATTRIBUTES) <= emitted_attributes, set(names.SPAN_ATTRIBUTES) - emitted_attributes

    for _ in range(200):  # the queue-lag gauge is refreshed every 5 s
        points = _metric_points(pipeline)
        if len({p.attributes["consumer"] for p in points.get(names.METRIC_CONSUMER_PENDING, [])}) >= 6:
            break
        await asyncio.sleep(0.05)
    for metric in names.METRICS:
        assert points.get(metric), f"{metric} was not emitted (got {sorted(points)})"
        labels = {k for p in points[metric] for k in p.attributes}
        assert set(names.METRIC_LABELS[metric]) <= labels, (metric, labels)
    statuses = {p.attributes["status"] for p in points[names.METRIC_GENERATIONS]}
    assert {"submitted", "completed"} <= statuses
    consumers = {p.attributes["consumer"] for p in points[names.METRIC_CONSUMER_PENDING]}
    assert {"dispatcher", "poller", "billing", "gateway-generations"} <= consumers
