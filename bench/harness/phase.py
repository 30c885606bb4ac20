"""A throughput phase: N generations submitted as fast as the system takes them, timed until every one is
completed in the read model and billed. Used by the throughput, latency (calibration) and replicas scenarios,
against services in the bench's process or in their own processes alike.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from . import mongo_stats
from .load import (
    PARAMS,
    Submit,
    Tracker,
    balance,
    loop_lag,
    read_model_done,
    sample_backlogs,
    stream_messages,
    submit_many,
)
from .measure import CpuMeter, pct


class Probe(Protocol):
    """Something measured over a phase: `begin()` returns a token that `end()` turns into a result."""

    name: str

    def begin(self) -> Any: ...

    def end(self, token: Any, items: int, wall: float) -> Any: ...


class MongoProbe:
    """MongoDB commands per generation; `stats` is a `MongoStats` (in-process) or `ProcessMongoStats`."""

    name = "mongo"

    def __init__(self, stats: Any) -> None:
        self.stats = stats

    def begin(self) -> Any:
        return self.stats.snapshot()

    def end(self, token: Any, items: int, wall: float) -> dict:
        return mongo_stats.summary(token, self.stats.snapshot(), items, wall)


class CounterProbe:
    """What a `Counter` of log lines (in-process handler, or service log files) gained over the phase."""

    name = "service_warnings"

    def __init__(self, counts: Any) -> None:
        self.counts = counts  # a callable returning a Counter

    def begin(self) -> Counter:
        return Counter(self.counts())

    def end(self, token: Counter, items: int, wall: float) -> dict[str, int]:
        new = Counter(self.counts())
        new.subtract(token)
        return {k: v for k, v in new.most_common() if v > 0}


@dataclass
class Target:
    """Where a phase sends its load and reads its outcome."""

    submit: Submit
    js: Any  # the bench's own (admin) JetStream context: stream counts, consumer backlogs
    api: httpx.AsyncClient  # the gateway: read model
    db: Any  # the bench's own MongoDB handle (not counted): balances
    tracker: Tracker
    pids: dict[str, int]  # the processes whose CPU is measured


async def run_phase(
    target: Target,
    n: int,
    *,
    mode: str,
    concurrency: int,
    timeout: float,
    probes: list[Probe] = (),
    job_params: dict[str, Any] = PARAMS,
) -> dict:
    spent0, reserved0 = await balance(target.db)
    messages0 = await stream_messages(target.js)
    tokens = [(probe, probe.begin()) for probe in probes]
    peaks: dict[str, int] = {}
    lags: list[float] = []
    stop = asyncio.Event()
    samplers = [
        asyncio.create_task(sample_backlogs(target.js, peaks, stop)),
        asyncio.create_task(loop_lag(lags, stop)),
    ]
    cpu = CpuMeter(target.pids)

    t0 = time.monotonic()
    subs = await submit_many(target.submit, n, concurrency, job_params)
    t_submitted = time.monotonic()
    ids = set(subs.start)
    deadline = t0 + timeout
    await target.tracker.wait_ended(ids, deadline, every=0.01)  # a) every terminal event is on NATS
    t_events = time.monotonic()
    # b) the read model shows every one completed with credits charged; billing booked every charge
    in_read_model, t_read_model, t_billed = 0, None, None
    all_completed = all(target.tracker.outcome(g) == "completed" for g in ids)
    while all_completed and time.monotonic() < deadline:
        if t_read_model is None:
            in_read_model = await read_model_done(target.api, ids)
            if in_read_model == len(ids):
                t_read_model = time.monotonic()
        if t_billed is None:
            spent, reserved = await balance(target.db)
            if spent - spent0 >= len(ids) * job_params["duration"] and reserved == reserved0:
                t_billed = time.monotonic()
        if t_read_model is not None and t_billed is not None:
            break
        await asyncio.sleep(0.05)
    t_end = time.monotonic()
    cpu_use = cpu.result()
    stop.set()
    await asyncio.gather(*samplers)

    wall = t_end - t0
    tracker = target.tracker
    outcomes = Counter(target.tracker.outcome(g) for g in ids)
    complete = (
        len(ids) == n
        and outcomes.get("completed", 0) == n
        and t_read_model is not None
        and t_billed is not None
    )
    e2e = [tracker.ended[g][1] - subs.start[g] for g in ids if g in tracker.ended]
    result: dict[str, Any] = {
        "mode": mode,
        "generations": n,
        "accepted": len(ids),
        "concurrency": concurrency,
        "outcomes": dict(outcomes),
        "complete": complete,
        "errors": subs.errors[:10],
        "error_count": len(subs.errors),
        "wall_s": round(wall, 3),
        "generations_per_s": round(len(ids) / wall, 2) if complete else None,
        "submit_s": round(t_submitted - t0, 3),
        "submit_per_s": round(len(ids) / (t_submitted - t0), 1),
        "submit_latency_p50_s": pct(subs.latency, 50),
        "submit_latency_p95_s": pct(subs.latency, 95),
        "last_terminal_event_s": round(t_events - t0, 3),
        # to the last terminal event on NATS: the dispatcher's and the poller's pace, without the read model
        "terminal_events_per_s": round(len(ids) / (t_events - t0), 2)
        if ids <= tracker.ended.keys()
        else None,
        "read_model_lag_s": round(t_read_model - t_events, 3) if t_read_model else None,
        "billing_lag_s": round(t_billed - t_events, 3) if t_billed else None,
        "in_read_model": in_read_model,
        "e2e_p50_s": pct(e2e, 50),
        "e2e_p95_s": pct(e2e, 95),
        "e2e_max_s": max(e2e) if e2e else None,
        "stages": tracker.stages(subs.start),
        "events_per_generation": round((await stream_messages(target.js) - messages0) / max(len(ids), 1), 2),
        "peak_consumer_backlog": peaks,
        "cpu": cpu_use,
        "bench_loop_lag_p50_s": pct(lags, 50),
        "bench_loop_lag_p95_s": pct(lags, 95),
        "bench_loop_lag_max_s": max(lags, default=None),
    }
    docs = (
        await target.db["generations"]
        .find({"_id": {"$in": list(ids)}}, {"created_at": 1, "updated_at": 1, "status": 1})
        .to_list()
    )
    server = [(d["updated_at"] - d["created_at"]).total_seconds() for d in docs if d["status"] == "completed"]
    result["server_p50_s"], result["server_p95_s"] = pct(server, 50), pct(server, 95)
    for probe, token in tokens:
        result[probe.name] = probe.end(token, len(ids), wall)
    return result
