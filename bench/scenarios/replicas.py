"""Scenario `replicas`: one dispatcher and one poller against two of each, side by side in one run
(services as processes; the extra replicas share the durable consumers, as in production).

On the shared system: a throughput phase with one replica each (A), then a second dispatcher and a
second poller are started and the same phase runs again (B); with `--replicas-rounds 2` the extra
replicas are stopped and A and B alternate once more, so drift on a busy machine hits both. Generations
are published on NATS (the upstream path), so the gateway's HTTP handling does not cap the rate. Two
rates: to the last terminal event on NATS (the dispatcher's and the poller's work) and to "completed in
the read model and billed" (which the single gateway and billing also bound).
"""

from __future__ import annotations

import argparse

from harness.client import attach_system
from harness.context import Context, console
from harness.measure import cpu_ms_per_item, ratio
from harness.phase import MongoProbe, run_phase
from rich.table import Table

NAME = "replicas"
SCALED = ("dispatcher", "poller")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("replicas")
    g.add_argument("--replicas-n", type=int, default=200, help="generations per phase")
    g.add_argument("--replicas-rounds", type=int, default=1, help="A/B pairs (alternating)")
    g.add_argument("--replicas-concurrency", type=int, default=20, help="publishes in flight")


async def run(ctx: Context) -> dict:
    args = ctx.args
    system = await ctx.shared_system()
    phases: dict[str, list[dict]] = {"1": [], "2": []}
    extra = []
    try:
        async with attach_system(system, args.replicas_concurrency) as client:
            for _ in range(args.replicas_rounds):
                for replicas in ("1", "2"):
                    if replicas == "2" and not extra:
                        with console.status("replicas: starting a second dispatcher and poller"):
                            extra = [await system.add_replica(name) for name in SCALED]
                    elif replicas == "1":
                        for service in extra:
                            system.remove(service)
                        extra = []
                    await client.settle()
                    target = client.target("nats", system.pids)
                    probes = [] if args.no_mongo_stats else [MongoProbe(system.mongo_stats())]
                    with console.status(
                        f"replicas: {replicas} dispatcher(s) + poller(s), {args.replicas_n} generations"
                    ):
                        await run_phase(
                            target, 10, mode="nats", concurrency=args.replicas_concurrency, timeout=300
                        )
                        p = await run_phase(
                            target,
                            args.replicas_n,
                            mode="nats",
                            concurrency=args.replicas_concurrency,
                            timeout=300,
                            probes=probes,
                        )
                    p["cpu_ms_per_generation"] = cpu_ms_per_item(p["cpu"], list(system.pids), p["accepted"])
                    phases[replicas].append(p)
                    console.print(
                        f"replicas {replicas}: {p['terminal_events_per_s']} gen/s to the terminal event, "
                        f"{p['generations_per_s']} gen/s to read model + billing ({p['outcomes']})"
                    )
    finally:
        for service in extra:
            system.remove(service)
    return {
        "n": args.replicas_n,
        "rounds": args.replicas_rounds,
        "phases": phases,
        "ratios": {
            key: ratio(_mean(phases["2"], key), _mean(phases["1"], key), 3)
            for key in ("terminal_events_per_s", "generations_per_s")
        },
    }


def _mean(phases: list[dict], key: str) -> float | None:
    values = [p[key] for p in phases if p.get(key)]
    return sum(values) / len(values) if len(values) == len(phases) and values else None


def report(r: dict) -> None:
    t = Table(
        title=f"Replicas: 1 vs 2 dispatchers + pollers ({r['n']} generations per phase, published on NATS, "
        f"{r['rounds']} round(s))"
    )
    t.add_column("metric")
    for replicas in ("1", "2"):
        t.add_column(f"{replicas} of each", justify="right")
    t.add_column("ratio 2 / 1", justify="right")

    def row(name: str, key: str, fmt=lambda v: f"{v:,.2f}") -> None:
        values = [_mean(r["phases"][k], key) for k in ("1", "2")]
        t.add_row(
            name,
            *("-" if v is None else fmt(v) for v in values),
            "-" if r["ratios"].get(key) is None else f"{r['ratios'][key]:.2f}",
        )

    row("gen/s to the last terminal event", "terminal_events_per_s")
    row("gen/s to read model + billing", "generations_per_s")
    cells = []
    for k in ("1", "2"):
        p = r["phases"][k][-1] if r["phases"][k] else None
        cells.append(
            "-"
            if p is None
            else ", ".join(
                f"{name}={v:.0f}"
                for name, v in p["cpu_ms_per_generation"].items()
                if name.split("-")[0] in SCALED
            )
        )
    t.add_row("CPU ms / generation, dispatchers and pollers", *cells, "")
    cells = [
        f"{r['phases'][k][-1]['cpu']['other_processes_cores']:.2f}" if r["phases"][k] else "-"
        for k in ("1", "2")
    ]
    t.add_row("CPU of other processes (noise, cores)", *cells, "")
    console.print(t)
    console.print(
        "On 2 shared cores a second replica mostly competes for the same CPU: the ratio shows whether the "
        "work divides between replicas without getting slower, not how it scales on more cores."
    )


def ok(r: dict) -> bool:
    return all(p["complete"] for phases in r["phases"].values() for p in phases)
