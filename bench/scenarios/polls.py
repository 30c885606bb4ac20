"""Scenario `polls`: how efficiently the poller finds out that jobs of mixed durations are done
(services as processes, production poll settings).

Jobs of each duration (default 3-60 s; `--long-mix`: 3 s-10 min) are POSTed in a shuffled order at a
modest fixed rate, then the bench waits until every one has ended. The fake counts the status calls it
answers per job (`GET /v1/jobs/{id}`). Per duration and overall:
- status calls per job, against a fixed 2 s poller (ceil(duration / 2) calls, computed) and against
  the ideal (1 call, right when the job is done);
- detection lag: the provider had the result (created + duration) -> the completed event on NATS.
"""

from __future__ import annotations

import argparse
import random
import time

from harness.client import attach_system
from harness.context import Context, console
from harness.jobs import Job, dist, join
from harness.load import params, submit_at_rate
from harness.measure import ceil_div, ms, ratio
from rich.table import Table

NAME = "polls"
SHORT_MIX = "3,5,10,20,30,45,60"
LONG_MIX = "3,10,30,60,120,300,600"
FIXED_INTERVAL_S = 2.0  # the naive poller the design is compared with


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("polls")
    g.add_argument("--polls-durations", default=SHORT_MIX, help="job durations (s), comma-separated")
    g.add_argument("--long-mix", action="store_true", help=f"durations {LONG_MIX} (over 10 minutes)")
    g.add_argument("--polls-per-duration", type=int, default=5, help="jobs of each duration")
    g.add_argument("--polls-rate", type=float, default=5.0, help="submits per second")


async def run(ctx: Context) -> dict:
    args = ctx.args
    durations = [float(d) for d in (LONG_MIX if args.long_mix else args.polls_durations).split(",")]
    plan = [d for d in durations for _ in range(args.polls_per_duration)]
    random.Random(11).shuffle(plan)  # no duration gets the quiet start to itself
    system = await ctx.shared_system()
    async with attach_system(system) as client:
        await client.settle()
        with console.status(
            f"polls: {len(plan)} jobs of {min(durations):g}-{max(durations):g} s, waiting for all"
        ):
            subs = await submit_at_rate(
                client.target("http", system.pids).submit, [params(d) for d in plan], args.polls_rate
            )
            await client.tracker.wait_ended(set(subs.start), time.monotonic() + max(durations) + 300)
        jobs = join(await system.servers.fake.jobs(), subs, client.tracker)
    by_duration = {f"{d:g}": _summary([j for j in jobs if j.latency == d], d) for d in durations}
    return {
        "durations_s": durations,
        "jobs_per_duration": args.polls_per_duration,
        "submit_rate_per_s": args.polls_rate,
        "errors": subs.errors[:5],
        "by_duration": by_duration,
        "overall": _summary(jobs, None),
    }


def _summary(jobs: list[Job], duration: float | None) -> dict:
    done = [j for j in jobs if j.outcome == "completed"]
    calls = sum(len(j.polls) for j in done)
    fixed = sum(ceil_div(j.latency, FIXED_INTERVAL_S) for j in done)
    return {
        "jobs": len(jobs),
        "completed": len(done),
        "outcomes": {o: sum(1 for j in jobs if j.outcome == o) for o in {j.outcome for j in jobs}},
        "status_calls": calls,
        "status_calls_per_job": round(calls / len(done), 2) if done else None,
        "fixed_2s_calls_per_job": round(fixed / len(done), 2) if done else None,
        "over_fixed_2s": ratio(calls, fixed),
        "over_ideal": ratio(calls, len(done)),
        "detection_lag_s": dist([j.detection_lag for j in done]),
        "detection_lag_share_of_duration": dist([j.detection_lag / j.latency for j in done if j.latency]),
        "duration_s": duration,
    }


def report(r: dict) -> None:
    t = Table(
        title="Poll efficiency over mixed durations (production poll settings; status calls counted at the fake)"
    )
    for col in (
        "duration",
        "jobs done",
        "status calls / job",
        "fixed 2 s poller",
        "ratio to fixed 2 s",
        "ratio to ideal (1)",
        "detection lag p50 / p95",
    ):
        t.add_column(col, justify="left" if col == "duration" else "right")
    rows = [*((f"{d} s", v) for d, v in r["by_duration"].items()), ("[b]all[/b]", r["overall"])]
    for name, v in rows:
        lag = v["detection_lag_s"]
        t.add_row(
            name,
            f"{v['completed']}/{v['jobs']}",
            _num(v["status_calls_per_job"]),
            _num(v["fixed_2s_calls_per_job"]),
            _num(v["over_fixed_2s"]),
            _num(v["over_ideal"]),
            f"{ms(lag['p50'])} / {ms(lag['p95'])}",
        )
    console.print(t)
    console.print(
        f"{r['overall']['jobs']} jobs, {r['jobs_per_duration']} per duration, submitted at "
        f"{r['submit_rate_per_s']}/s in a shuffled order; fixed 2 s poller = ceil(duration / 2) calls; "
        "ideal = 1 call per job. Detection lag = provider done (created + duration) -> completed on NATS."
    )


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def ok(r: dict) -> bool:
    return r["overall"]["completed"] == r["overall"]["jobs"]
