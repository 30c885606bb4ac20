"""The tables of the throughput scenario."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.context import console
from harness.measure import ms
from rich.table import Table

PATHS = [
    ("pipeline_http", "2. in-process, HTTP"),
    ("pipeline_nats", "2b. in-process, NATS"),
    ("processes", "3. processes, HTTP"),
]


def report(r: dict) -> None:
    raw = r.get("raw")
    paths = [(label, r[key]) for key, label in PATHS if r.get(key)]
    _main_table(r, raw, paths)
    if r.get("processes"):
        _cpu_table(r["processes"], r["settings"]["targets"])
    for label, p in paths:
        if p.get("mongo"):
            _mongo_table(label, p, r["settings"]["targets"])
        if p.get("spans"):
            _span_table(label, p)
    for label, p in paths:
        for err in p.get("errors", []):
            console.print(f"[red]error[/red] ({label}): {err}")
        for warning, count in list(p.get("service_warnings", {}).items())[:12]:
            console.print(f"[yellow]service log[/yellow] ({label}) {count}x {warning}")
    s = r["settings"]
    console.print(
        f"Settings: N={s['n']} generations per path ({s['params']}, sim latency 0), {s['raw_n']} raw messages, "
        f"{s['concurrency']} in flight, {s['warmup']} warm-up generations per path. In-process paths: poll "
        f"interval {s['inprocess_poll_interval_s'][0]}-{s['inprocess_poll_interval_s'][1]} s; processes: "
        f"{s['processes_poll_settings']}. Throughput = until every generation is completed in the read model "
        "and billed. Compare ratios from one run, not absolute numbers across runs (shared 2-core machine)."
    )


def _main_table(r: dict, raw: dict | None, paths: list[tuple[str, dict]]) -> None:
    ratios = r.get("ratios", {})
    t = Table(title="Throughput: the pipeline against a raw JetStream round trip (one run)")
    t.add_column("metric")
    if raw:
        t.add_column("1. raw JetStream", justify="right")
    for label, _ in paths:
        t.add_column(label, justify="right")

    def row(name: str, raw_value: str, fmt: Callable[[dict], Any]) -> None:
        cells = []
        for _, p in paths:
            try:
                value = fmt(p)
            except (KeyError, TypeError):
                value = None
            cells.append("-" if value is None else str(value))
        t.add_row(name, *([raw_value] if raw else []), *cells)

    rv = raw or {}
    row("items", f"{rv.get('messages')} msgs", lambda p: f"{p['accepted']} gens")
    row(
        "throughput",
        f"{rv.get('msgs_per_s', 0):,.0f} msg/s",
        lambda p: f"{p['generations_per_s']:,.1f} gen/s",
    )
    row("ratio to raw msg/s", "1", lambda p: f"{p['generations_per_s'] / rv['msgs_per_s']:.4f}")
    row("JetStream events per generation", "1", lambda p: p["events_per_generation"])
    row("wall time", f"{rv.get('wall_s', 0):.2f} s", lambda p: f"{p['wall_s']:.1f} s")
    row("outcomes", "-", lambda p: ", ".join(f"{k}={c}" for k, c in p["outcomes"].items()))
    row(
        "submit rate (POST / publish)",
        f"{rv.get('publish_only_msgs_per_s', 0):,.0f} msg/s",
        lambda p: f"{p['submit_per_s']:,.0f} /s",
    )
    row(
        "submit latency p50 / p95",
        "-",
        lambda p: f"{ms(p['submit_latency_p50_s'])} / {ms(p['submit_latency_p95_s'])}",
    )
    row(
        "end-to-end p50 / p95 (client)",
        f"{ms(rv.get('latency_p50_s'))} / {ms(rv.get('latency_p95_s'))}",
        lambda p: f"{ms(p['e2e_p50_s'])} / {ms(p['e2e_p95_s'])}",
    )
    row(
        "created->updated p50 / p95 (read model)",
        "-",
        lambda p: f"{ms(p['server_p50_s'])} / {ms(p['server_p95_s'])}",
    )
    for stage in paths[0][1]["stages"] if paths else {}:
        row(
            f"  {stage} p50 / p95",
            "-",
            lambda p, s=stage: f"{ms(p['stages'][s]['p50_s'])} / {ms(p['stages'][s]['p95_s'])}",
        )
    row("read model lag after last event", "-", lambda p: ms(p["read_model_lag_s"]))
    row("billing lag after last event", "-", lambda p: ms(p["billing_lag_s"]))
    row(
        "CPU ms per generation, all processes",
        "-",
        lambda p: f"{sum(p['cpu_ms_per_generation'].values()):.1f}",
    )
    row("MongoDB ops per generation", "-", lambda p: p["mongo"]["ops_per_generation"])
    row(
        "MongoDB ops/s, mean op latency",
        "-",
        lambda p: f"{p['mongo']['ops_per_s']:,.0f}/s, {p['mongo']['mean_op_ms']:.2f} ms",
    )
    row(
        "bench event-loop lag p50 / p95",
        "-",
        lambda p: f"{ms(p['bench_loop_lag_p50_s'])} / {ms(p['bench_loop_lag_p95_s'])}",
    )
    row(
        "machine busy (all processes)",
        f"{rv.get('cpu', {}).get('machine_busy_pct', 0):.0f}%",
        lambda p: f"{p['cpu']['machine_busy_pct']:.0f}%",
    )
    row(
        "CPU of other processes (noise, cores)",
        f"{rv.get('cpu', {}).get('other_processes_cores', 0):.2f}",
        lambda p: f"{p['cpu']['other_processes_cores']:.2f}",
    )
    for durable in ("dispatcher", "poller", "gateway-generations", "gateway-credits", "billing"):
        row(f"peak backlog {durable}", "-", lambda p, d=durable: p["peak_consumer_backlog"].get(d))
    console.print(t)
    for key in ("http_over_nats", "processes_over_inprocess_http"):
        if key in ratios:
            console.print(f"ratio {key}: {ratios[key]}")


def _cpu_table(p: dict, targets: dict) -> None:
    t = Table(title="3. CPU per generation, each process its own (services as processes, via HTTP)")
    for col in ("process", "CPU ms / generation", "cores (mean)"):
        t.add_column(col, justify="left" if col == "process" else "right")
    for name, value in p["cpu_ms_per_generation"].items():
        t.add_row(name, f"{value:.2f}", f"{p['cpu'].get(f'{name}_cores', 0):.2f}")
    target = targets["cpu_ms_per_generation"]
    system = p["cpu_ms_per_generation_system"]
    t.add_row(
        "[b]system (4 services + NATS + MongoDB)[/b]",
        f"[b]{system:.1f}[/b]",
        f"target <= {target:.0f} ms: {system / target:.2f}x",
    )
    t.add_row("all (+ sim fake + bench client)", f"{p['cpu_ms_per_generation_all']:.1f}", "")
    console.print(t)


def _mongo_table(label: str, p: dict, targets: dict) -> None:
    m = p["mongo"]
    target = targets["mongo_ops_per_generation"]
    t = Table(
        title=f"MongoDB commands per generation ({label}): {m['ops_per_generation']} "
        f"(target <= {target:.0f}: {m['ops_per_generation'] / target:.1f}x)"
    )
    for col in ("command collection", "per generation", "mean latency"):
        t.add_column(col, justify="left" if col.startswith("command") else "right")
    for cmd, v in list(m["by_command"].items())[:16]:
        t.add_row(cmd, f"{v['per_generation']:.2f}", f"{v['mean_ms']:.2f} ms")
    console.print(t)


def _span_table(label: str, p: dict) -> None:
    t = Table(title=f"Spans per generation, by total time ({label}, --span-stats)")
    for col in ("span", "per generation", "p50", "p95", "total"):
        t.add_column(col, justify="left" if col == "span" else "right")
    for name, v in list(p["spans"].items())[:15]:
        t.add_row(
            name,
            f"{v['per_generation']:.2f}",
            f"{v['p50_ms']:.1f} ms",
            f"{v['p95_ms']:.1f} ms",
            f"{v['total_s']:.2f} s",
        )
    console.print(t)
