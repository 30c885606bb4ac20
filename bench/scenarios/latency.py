"""Scenario `latency`: the pipeline's overhead on a job's latency, at half load, with production poll
settings (services as processes, as `make run`).

Half load = half the throughput measured on the same system (the `throughput` scenario's process path
when it ran in this invocation, else a calibration phase here). Jobs of each duration (default 2 s and
10 s: the fake's `latency` knob per job) are POSTed at that fixed rate (open loop). Per job:

    overhead = (POST start -> completed event on NATS) - the job's duration at the provider
             = dispatch (POST -> job created at the provider) + detection lag (provider done -> completed)
"""

from __future__ import annotations

import argparse
import time

from harness.client import attach_system
from harness.context import Context, console
from harness.jobs import dist, join
from harness.load import params, submit_at_rate
from harness.measure import CpuMeter, ms
from harness.phase import run_phase
from rich.table import Table

NAME = "latency"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("latency")
    g.add_argument(
        "--latency-durations", default="2,10", help="job durations at the provider (s), comma-separated"
    )
    g.add_argument("--latency-n", type=int, default=40, help="jobs per duration")
    g.add_argument(
        "--load-rate",
        type=float,
        default=None,
        help="submits per second (default: half the throughput measured on this system)",
    )
    g.add_argument(
        "--latency-calibrate-n",
        type=int,
        default=60,
        help="generations of the calibration phase, when the throughput scenario did not run",
    )


async def run(ctx: Context) -> dict:
    args = ctx.args
    system = await ctx.shared_system()
    durations = [float(d) for d in args.latency_durations.split(",")]
    result: dict = {"durations_s": durations, "jobs_per_duration": args.latency_n, "by_duration": {}}
    async with attach_system(system) as client:
        throughput, source = await _throughput(ctx, client, system)
        rate = args.load_rate or throughput / 2
        result.update(
            throughput_gen_per_s=throughput,
            throughput_source=source,
            load_rate_per_s=round(rate, 2),
            load_share=round(rate / throughput, 2) if throughput else None,
        )
        console.print(f"latency: throughput {throughput} gen/s ({source}); load {rate:.2f} submits/s")
        for d in durations:
            await client.settle()
            with console.status(f"latency: {args.latency_n} jobs of {d:g} s at {rate:.2f}/s"):
                cpu = CpuMeter(system.pids)
                subs = await submit_at_rate(
                    client.target("http", system.pids).submit, [params(d)] * args.latency_n, rate
                )
                await client.tracker.wait_ended(set(subs.start), time.monotonic() + d + 180)
                cpu_use = cpu.result()
            jobs = join(await system.servers.fake.jobs(), subs, client.tracker)
            done = [j for j in jobs if j.outcome == "completed"]
            result["by_duration"][f"{d:g}"] = {
                "duration_s": d,
                "submitted": len(subs.start),
                "completed": len(done),
                "errors": subs.errors[:5],
                "achieved_rate_per_s": round(
                    len(subs.start) / max(max(subs.start.values()) - min(subs.start.values()), 1e-9), 2
                )
                if len(subs.start) > 1
                else None,
                "overhead_s": dist([j.ended - j.submitted - j.latency for j in done]),
                "end_to_end_s": dist([j.ended - j.submitted for j in done]),
                "dispatch_s": dist([j.created - j.submitted for j in done if j.created]),
                "detection_lag_s": dist([j.detection_lag for j in done]),
                "status_calls_per_job": dist([len(j.polls) for j in done]),
                "cores": {k.removesuffix("_cores"): v for k, v in cpu_use.items() if k.endswith("_cores")},
                "other_processes_cores": cpu_use["other_processes_cores"],
            }
    return result


async def _throughput(ctx: Context, client, system) -> tuple[float, str]:
    measured = ((ctx.results.get("throughput") or {}).get("processes") or {}).get("generations_per_s")
    if measured:
        return measured, "the throughput scenario's process path, this run"
    with console.status(f"latency: calibrating, {ctx.args.latency_calibrate_n} generations at latency 0"):
        await run_phase(client.target("http", system.pids), 10, mode="http", concurrency=20, timeout=300)
        p = await run_phase(
            client.target("http", system.pids),
            ctx.args.latency_calibrate_n,
            mode="http",
            concurrency=20,
            timeout=300,
        )
    return p["generations_per_s"] or 1.0, f"calibration phase of {ctx.args.latency_calibrate_n} generations"


def report(r: dict) -> None:
    t = Table(
        title=f"Overhead latency at {r['load_share']:.0%} of the measured throughput "
        f"({r['load_rate_per_s']}/s of {r['throughput_gen_per_s']} gen/s), production poll settings"
    )
    t.add_column("metric")
    for d in r["by_duration"]:
        t.add_column(f"{d} s jobs", justify="right")
    rows = [
        ("jobs completed / submitted", lambda v: f"{v['completed']} / {v['submitted']}"),
        ("achieved submit rate", lambda v: f"{v['achieved_rate_per_s']}/s"),
        ("overhead p50 / p95", lambda v: _pair(v["overhead_s"])),
        (
            "overhead p50 as a share of the job's time",
            lambda v: f"{v['overhead_s']['p50'] / v['duration_s']:.0%}",
        ),
        ("  dispatch (POST -> job at provider) p50 / p95", lambda v: _pair(v["dispatch_s"])),
        ("  detection lag (provider done -> completed) p50 / p95", lambda v: _pair(v["detection_lag_s"])),
        ("end to end p50 / p95", lambda v: _pair(v["end_to_end_s"])),
        ("status calls per job (mean)", lambda v: f"{v['status_calls_per_job']['mean']:.1f}"),
        ("CPU of other processes (noise, cores)", lambda v: f"{v['other_processes_cores']:.2f}"),
    ]
    for name, fmt in rows:
        cells = []
        for v in r["by_duration"].values():
            try:
                cells.append(fmt(v))
            except (KeyError, TypeError):
                cells.append("-")
        t.add_row(name, *cells)
    console.print(t)
    console.print(
        "overhead = (POST -> completed event on NATS) - the job's time at the provider; "
        "the overhead's ratio to the job's time is what a poll-schedule change moves."
    )


def _pair(d: dict) -> str:
    return f"{ms(d['p50'])} / {ms(d['p95'])}"


def ok(r: dict) -> bool:
    return all(v["completed"] == v["submitted"] for v in r["by_duration"].values())
