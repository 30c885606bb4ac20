"""Scenario `inflight`: N long jobs in flight at once (services as processes, production settings, a
system of its own).

N generations of one duration (default 2,000 of 120 s; issue 11's target is 20,000: `--inflight-n
20000`) are published on NATS as fast as the upstream path takes them, then the bench waits until every
one has ended (or `--inflight-max-wait`). From the fake's view of each job (created, status-call times)
joined with its events on NATS:
- polled within X s: its first status call came at most X s after the provider created it (the old
  fixed schedule's notion: a duration-aware poller first polls a job of known duration at its end);
- on schedule: its end detected within X s of the provider finishing it, with no status call after
  that (X = `--inflight-window`, default 30 s);
- failed by deadline (`provider_timeout`), other outcomes, never ended;
- poll rate: status calls per second while jobs were in flight, against the ideal (one call per job at
  its end: N / duration per second) and the production schedule's steady state (N / 15 s);
- peak RSS (VmRSS, sampled every second, and VmHWM) of the poller and dispatcher processes.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import suppress

from harness.client import attach_system
from harness.context import Context, console
from harness.jobs import Job, dist, join
from harness.load import consumer_limits, params, submit_many
from harness.measure import CpuMeter, ceil_div, ratio, secs
from harness.system import System
from rich.table import Table

NAME = "inflight"
PRODUCTION_POLL_CAP_S = 15.0  # PIXSIM_POLL_MAX_INTERVAL's default
PRODUCTION_JOB_TIMEOUT_S = 900.0  # PIXSIM_JOB_TIMEOUT's default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("inflight")
    g.add_argument(
        "--inflight-n", type=int, default=2000, help="jobs in flight at once (issue 11's target: 20000)"
    )
    g.add_argument(
        "--inflight-duration", type=float, default=120, help="how long each job runs at the provider (s)"
    )
    g.add_argument("--inflight-window", type=float, default=30, help="X: the 'polled within X s' bound (s)")
    g.add_argument(
        "--inflight-concurrency", type=int, default=50, help="publishes in flight while submitting"
    )
    g.add_argument(
        "--inflight-job-timeout",
        type=float,
        default=None,
        help=f"PIXSIM_JOB_TIMEOUT for this system (default: production's, {PRODUCTION_JOB_TIMEOUT_S:g} s)",
    )
    g.add_argument(
        "--inflight-max-wait",
        type=float,
        default=None,
        help="stop waiting for the jobs to end after this (s; default: job timeout + 300)",
    )


async def run(ctx: Context) -> dict:
    args = ctx.args
    n, duration, window = args.inflight_n, args.inflight_duration, args.inflight_window
    timeout = args.inflight_job_timeout or PRODUCTION_JOB_TIMEOUT_S
    env = {"PIXSIM_JOB_TIMEOUT": str(args.inflight_job_timeout)} if args.inflight_job_timeout else {}
    max_wait = args.inflight_max_wait or timeout + 300
    with console.status("inflight: starting a system of its own"):
        system = System(env=env, fake_backlog=args.fake_backlog, mongo_stats=False)
        await system.__aenter__()
    try:
        async with attach_system(system) as client:
            limits = await consumer_limits(client.js)
            samples: list[dict] = []
            stop = asyncio.Event()
            sampler = asyncio.create_task(_sample(system, client, samples, stop))
            cpu = CpuMeter(system.pids)
            t0 = time.monotonic()
            with console.status(f"inflight: publishing {n} jobs of {duration:g} s"):
                subs = await submit_many(
                    client.target("nats", system.pids).submit, n, args.inflight_concurrency, params(duration)
                )
            t_submitted = time.monotonic()
            with console.status(f"inflight: waiting for {n} jobs to end (at most {max_wait:g} s)"):
                await client.tracker.wait_ended(set(subs.start), t0 + max_wait, every=1.0)
            cpu_use = cpu.result()
            stop.set()
            await sampler
            jobs = join(await system.servers.fake.jobs(), subs, client.tracker)
            memory_end = system.memory_mb()
    finally:
        system.stop()
    result = _analyse(jobs, duration, window, t0)
    result.update(
        settings={
            "n": n,
            "duration_s": duration,
            "window_s": window,
            "job_timeout_s": timeout,
            "max_wait_s": max_wait,
            "submit": f"published on NATS (upstream), {args.inflight_concurrency} in flight",
            "consumers": limits,
        },
        submit_s=round(t_submitted - t0, 1),
        submit_errors=subs.errors[:5],
        cpu=cpu_use,
        memory_mb=_memory(samples, memory_end),
        timeline=samples[:: max(1, len(samples) // 60)],
    )
    return result


async def _sample(system: System, client, samples: list[dict], stop: asyncio.Event) -> None:
    """Every second: memory of each service, and how many generations are between submitted and ended."""
    t0 = time.monotonic()
    while not stop.is_set():
        tracker = client.tracker
        submitted = sum(1 for seen in list(tracker.seen.values()) if "submitted" in seen)
        samples.append(
            {
                "t": round(time.monotonic() - t0, 1),
                "rss_mb": {k: v.get("VmRSS") for k, v in system.memory_mb().items()},
                "in_flight": submitted - len(tracker.ended),
                "ended": len(tracker.ended),
            }
        )
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def _analyse(jobs: list[Job], duration: float, window: float, t0: float) -> dict:
    created = [j for j in jobs if j.created is not None]
    polled_within = [j for j in created if j.first_poll_lag is not None and j.first_poll_lag <= window]
    on_schedule = [j for j in created if _on_schedule(j, window)]
    outcomes: dict[str, int] = {}
    for j in jobs:
        outcomes[j.outcome] = outcomes.get(j.outcome, 0) + 1
    calls = [t for j in created for t in j.polls]
    first, last = (min(j.created for j in created), max(calls)) if created and calls else (t0, t0)
    span = max(last - first, 1e-9)
    bins: dict[int, int] = {}
    for t in calls:
        bins[int((t - first) // 10)] = bins.get(int((t - first) // 10), 0) + 1
    n = len(jobs)
    ended = [j.ended for j in jobs if j.ended is not None]
    return {
        "jobs": n,
        "reached_provider": len(created),
        "provider_created_spread_s": round(max(j.created for j in created) - first, 1) if created else None,
        "peak_in_flight_at_provider": _peak(created),
        "polled_within_window": len(polled_within),
        "on_schedule": len(on_schedule),
        "never_polled": sum(1 for j in created if not j.polls),
        "outcomes": outcomes,
        "failed_by_deadline": outcomes.get("failed: provider_timeout", 0),
        "all_ended_s": round(max(ended) - t0, 1) if len(ended) == n and ended else None,
        "first_poll_lag_s": dist([j.first_poll_lag for j in created]),
        "longest_unpolled_s": dist([j.longest_unpolled for j in created]),
        "detection_lag_s": dist([j.detection_lag for j in jobs]),
        "status_calls": len(calls),
        "status_calls_per_job": round(len(calls) / max(len(created), 1), 2),
        "fixed_2s_calls_per_job": ceil_div(duration, 2.0),
        "poll_rate_mean_per_s": round(len(calls) / span, 1),
        "poll_rate_peak_10s_per_s": round(max(bins.values(), default=0) / 10, 1),
        "poll_rate_ideal_per_s": round(n / duration, 1),
        "poll_rate_production_schedule_per_s": round(n / PRODUCTION_POLL_CAP_S, 1),
        "poll_rate_mean_over_ideal": ratio(len(calls) / span, n / duration),
        "by_creation": _by_creation(created, first, window),
        "late_sample": [_timeline(j, first) for j in created if not _on_schedule(j, window)][:LATE_SAMPLE],
    }


def _on_schedule(j: Job, window: float) -> bool:
    """Its end was detected within `window` seconds of the provider finishing it."""
    return j.detection_lag is not None and j.detection_lag <= window


def _by_creation(jobs: list[Job], first: float, window: float, bucket_s: float = 30.0) -> list[dict]:
    """Per 30 s of creation time at the provider: how many jobs, how many polled within X, first-poll lag,
    how many on schedule, detection lag and status calls per job (which jobs were late, and why)."""
    buckets: dict[int, list[Job]] = {}
    for j in jobs:
        buckets.setdefault(int((j.created - first) // bucket_s), []).append(j)
    return [
        {
            "created_from_s": k * bucket_s,
            "jobs": len(js),
            "polled_within_window": sum(
                1 for j in js if j.first_poll_lag is not None and j.first_poll_lag <= window
            ),
            "first_poll_lag_s": dist([j.first_poll_lag for j in js]),
            "on_schedule": sum(1 for j in js if _on_schedule(j, window)),
            "detection_lag_s": dist([j.detection_lag for j in js]),
            "status_calls_per_job": round(sum(len(j.polls) for j in js) / max(len(js), 1), 2),
        }
        for k, js in sorted(buckets.items())
    ]


#: How many late jobs the results keep whole (their status calls), to see why they were late.
LATE_SAMPLE = 25


def _timeline(j: Job, first: float) -> dict:
    """A job's life in seconds after its creation at the provider (`created_s`: after the first job's)."""
    return {
        "gid": j.gid,
        "created_s": round(j.created - first, 1),
        "finished_after_s": round(j.latency, 1),
        "polls_after_s": [round(t - j.created, 1) for t in j.polls],
        "ended_after_s": None if j.ended is None else round(j.ended - j.created, 1),
        "outcome": j.outcome,
    }


def _peak(jobs: list[Job]) -> int:
    """Most jobs at once between their creation at the provider and their terminal event."""
    edges = sorted([(j.created, 1) for j in jobs] + [(j.ended, -1) for j in jobs if j.ended is not None])
    peak = level = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def _memory(samples: list[dict], end: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    out = {}
    for name, mem in end.items():
        values = [s["rss_mb"].get(name) for s in samples if s["rss_mb"].get(name)]
        out[name] = {
            "rss_peak_sampled": max(values, default=None),
            "rss_end": mem.get("VmRSS"),
            "hwm": mem.get("VmHWM"),
            "rss_start": values[0] if values else None,
        }
    return out


def report(r: dict) -> None:
    s = r["settings"]
    n = r["jobs"]
    t = Table(
        title=f"In flight: {n} jobs of {s['duration_s']:g} s at once (X = {s['window_s']:g} s, job timeout "
        f"{s['job_timeout_s']:g} s, poller max_ack_pending "
        f"{s['consumers'].get('poller', {}).get('max_ack_pending')})"
    )
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("share of N", justify="right")

    def row(name: str, value: object, share: float | None = None) -> None:
        t.add_row(
            name, "-" if value is None else str(value), "" if share is None else f"{share / max(n, 1):.1%}"
        )

    row("published (s to publish all)", f"{n} ({r['submit_s']} s)")
    row(
        "reached the provider (spread of creation)",
        f"{r['reached_provider']} ({secs(r['provider_created_spread_s'])})",
        r["reached_provider"],
    )
    row(
        "peak in flight (created at provider, not ended)",
        r["peak_in_flight_at_provider"],
        r["peak_in_flight_at_provider"],
    )
    row(
        f"polled within {s['window_s']:g} s of creation", r["polled_within_window"], r["polled_within_window"]
    )
    row("on schedule (see README)", r["on_schedule"], r["on_schedule"])
    row("never polled", r["never_polled"], r["never_polled"])
    row("failed by deadline (provider_timeout)", r["failed_by_deadline"], r["failed_by_deadline"])
    row("outcomes", ", ".join(f"{k}={v}" for k, v in sorted(r["outcomes"].items())))
    row("all ended after", secs(r["all_ended_s"]))
    for key, label in (
        ("first_poll_lag_s", "first poll after creation"),
        ("longest_unpolled_s", "longest unpolled"),
        ("detection_lag_s", "detection lag"),
    ):
        d = r[key]
        row(f"{label} p50 / p95 / max", f"{secs(d['p50'])} / {secs(d['p95'])} / {secs(d['max'])}")
    row(
        "status calls per job (fixed 2 s poller / ideal)",
        f"{r['status_calls_per_job']} ({r['fixed_2s_calls_per_job']} / 1)",
    )
    row(
        "poll rate mean / peak 10 s (calls/s)",
        f"{r['poll_rate_mean_per_s']} / {r['poll_rate_peak_10s_per_s']}",
    )
    row(
        "  ideal: N / duration; production schedule: N / 15 s",
        f"{r['poll_rate_ideal_per_s']}; {r['poll_rate_production_schedule_per_s']}",
    )
    row("  mean over ideal", r["poll_rate_mean_over_ideal"])
    for name in ("poller", "dispatcher", "gateway", "billing"):
        m = r["memory_mb"].get(name)
        if m:
            row(
                f"RSS {name}: start / peak sampled / HWM (MB)",
                f"{m['rss_start']} / {m['rss_peak_sampled']} / {m['hwm']}",
            )
    cpu = r["cpu"]
    row(
        "CPU cores (mean): poller / dispatcher / gateway / nx-27017",
        " / ".join(
            f"{cpu.get(f'{k}_cores', 0):.2f}" for k in ("poller", "dispatcher", "gateway", "nx_27017")
        ),
    )
    row("CPU of other processes (noise, cores)", cpu["other_processes_cores"])
    console.print(t)
    b = Table(
        title=f"In flight: first status call by creation time at the provider (X = {s['window_s']:g} s)"
    )
    for col in (
        "created at (s after the first)",
        "jobs",
        f"polled within {s['window_s']:g} s",
        "first poll after creation p50 / max",
        "on schedule",
        "detection lag p50 / max",
        "calls per job",
    ):
        b.add_column(col, justify="right")
    for bucket in r["by_creation"]:
        lag, found = bucket["first_poll_lag_s"], bucket.get("detection_lag_s") or {}
        b.add_row(
            f"{bucket['created_from_s']:g}-{bucket['created_from_s'] + 30:g}",
            str(bucket["jobs"]),
            str(bucket["polled_within_window"]),
            f"{secs(lag['p50'])} / {secs(lag['max'])}",
            str(bucket.get("on_schedule", "-")),
            f"{secs(found.get('p50'))} / {secs(found.get('max'))}",
            str(bucket.get("status_calls_per_job", "-")),
        )
    console.print(b)


def ok(r: dict) -> bool:
    return r["outcomes"].get("completed", 0) == r["jobs"]
