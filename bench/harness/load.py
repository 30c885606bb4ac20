"""Load generation and completion tracking, shared by the scenarios.

Generations are submitted through the gateway (`POST /api/v1/generations`) or published straight onto
NATS as an upstream system would (`GenerationRequested`, `Nats-Msg-Id` = generation id). Their events
are watched through a core NATS subscription (`Tracker`), which is not a JetStream consumer and so
takes no part in the pipeline.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from pixsim_contracts import TERMINAL_GENERATION_EVENTS as TERMINAL
from pixsim_contracts import GenerationRequested, OperationType, new_id, subjects

from .measure import pct

#: The sim parameters of every bench generation; `latency` (the job's run time at the fake) is added per
#: scenario. A video of duration 1 costs 1 credit.
PARAMS = {"prompt": "a fox in the snow", "duration": 1}
#: The sim provider needs no credentials: every job runs on its system account, whose balance billing keeps.
SYSTEM_BALANCE = "system-sim:sim"
DB_NAME = "pixsim_bench"
#: (stream, durable) of every consumer a generation passes through.
CONSUMERS = [
    (subjects.GENERATIONS_STREAM, "dispatcher"),
    (subjects.GENERATIONS_STREAM, "poller"),
    (subjects.GENERATIONS_STREAM, "gateway-generations"),
    (subjects.CREDITS_STREAM, "gateway-credits"),
    (subjects.CREDITS_STREAM, "billing"),
]
#: Stages of a generation, from the moments its events reached NATS: (name, from event, to event).
STAGES = [
    ("gateway/upstream -> requested", None, "requested"),
    ("requested -> submitted (dispatcher)", "requested", "submitted"),
    ("submitted -> completed (poller)", "submitted", "completed"),
]


def params(latency: float | None = None) -> dict[str, Any]:
    return PARAMS if latency is None else {**PARAMS, "latency": latency}


class Tracker:
    """When each generation event reached NATS (`time.monotonic()`), seen through a core subscription."""

    def __init__(self) -> None:
        self.ended: dict[str, tuple[str, float]] = {}
        self.seen: dict[str, dict[str, float]] = defaultdict(dict)
        self.error_codes: dict[str, str] = {}

    async def start(self, nc: Any) -> None:
        async def on_msg(msg: Any) -> None:
            now = time.monotonic()
            _, _, gid, kind = msg.subject.split(".", 3)
            self.seen[gid].setdefault(kind, now)
            if kind in TERMINAL and gid not in self.ended:
                self.ended[gid] = (kind, now)
                if kind in ("failed", "filtered"):
                    with suppress(ValueError, KeyError, TypeError):
                        self.error_codes[gid] = json.loads(msg.data)["error"]["code"]

        await nc.subscribe(subjects.GENERATION_SUBJECTS, cb=on_msg)

    def outcome(self, gid: str) -> str:
        kind = self.ended.get(gid, ("unfinished",))[0]
        return f"{kind}: {self.error_codes[gid]}" if gid in self.error_codes else kind

    async def wait_ended(self, ids: set[str], deadline: float, every: float = 0.05) -> None:
        while not ids <= self.ended.keys() and time.monotonic() < deadline:
            await asyncio.sleep(every)

    def stages(self, starts: dict[str, float]) -> dict[str, dict[str, float | None]]:
        out = {}
        for name, first, last in STAGES:
            values = []
            for gid, t0 in starts.items():
                seen = self.seen.get(gid, {})
                begin = t0 if first is None else seen.get(first)
                if begin is not None and last in seen:
                    values.append(seen[last] - begin)
            out[name] = {
                "p50_s": pct(values, 50),
                "p95_s": pct(values, 95),
                "max_s": max(values, default=None),
            }
        return out


@dataclass
class Submissions:
    """What a load generator sent: generation id -> when its submit started (`time.monotonic()`)."""

    start: dict[str, float] = field(default_factory=dict)
    latency: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def submit_http(api: httpx.AsyncClient, subs: Submissions, job_params: dict[str, Any]) -> None:
    t0 = time.monotonic()
    try:
        with suppress_http_instrumentation():  # the load generator is not part of the system
            resp = await api.post(
                "/api/v1/generations",
                json={"provider_id": "sim", "operation_type": "text_to_video", "params": job_params},
            )
    except httpx.HTTPError as exc:
        subs.errors.append(f"POST: {type(exc).__name__}: {exc}")
        return
    subs.latency.append(time.monotonic() - t0)
    if resp.status_code != 202:
        subs.errors.append(f"POST: HTTP {resp.status_code}: {resp.text[:200]}")
        return
    subs.start[resp.json()["id"]] = t0


async def submit_nats(js: Any, subs: Submissions, job_params: dict[str, Any]) -> None:
    """The upstream path: GenerationRequested straight onto its subject, Nats-Msg-Id = generation id."""
    gid = new_id()
    event = GenerationRequested(
        event_id=f"{gid}.requested",
        generation_id=gid,
        provider_id="sim",
        operation_type=OperationType.TEXT_TO_VIDEO,
        params=job_params,
    )
    t0 = time.monotonic()
    subs.start[gid] = t0
    try:
        await js.publish(
            event.subject,
            event.model_dump_json().encode(),
            stream=subjects.GENERATIONS_STREAM,
            timeout=10,
            headers={"Nats-Msg-Id": gid, "content-type": "application/json"},
        )
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        subs.errors.append(f"publish: {type(exc).__name__}: {exc}")
        subs.start.pop(gid, None)
        return
    subs.latency.append(time.monotonic() - t0)


Submit = Callable[[Submissions, dict[str, Any]], Awaitable[None]]


def submitter(mode: str, api: httpx.AsyncClient | None, upstream_js: Any) -> Submit:
    if mode == "http":
        return lambda subs, p: submit_http(api, subs, p)
    return lambda subs, p: submit_nats(upstream_js, subs, p)


async def submit_many(
    submit: Submit, n: int, concurrency: int, job_params: dict[str, Any], subs: Submissions | None = None
) -> Submissions:
    """`n` submits, `concurrency` in flight (closed loop: as fast as the system accepts them)."""
    subs = subs or Submissions()
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            await submit(subs, job_params)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return subs


async def submit_at_rate(submit: Submit, plan: list[dict[str, Any]], per_s: float) -> Submissions:
    """One submit per entry of `plan` (its params), at a fixed rate (open loop: a slow answer does not
    delay the next submit)."""
    subs = Submissions()
    t0 = time.monotonic()
    tasks = []
    for i, job_params in enumerate(plan):
        delay = t0 + i / per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(submit(subs, job_params)))
    await asyncio.gather(*tasks)
    return subs


# -- is everything done? ------------------------------------------------------------------------------
async def read_model_done(api: httpx.AsyncClient, ids: set[str]) -> int:
    """How many of `ids` the gateway lists as completed with their credits charged (newest first, paged)."""
    seen: set[str] = set()
    cursor = None
    while True:
        query: dict[str, Any] = {"status": "completed", "provider_id": "sim", "limit": 200}
        if cursor:
            query["cursor"] = cursor
        with suppress_http_instrumentation():
            body = (await api.get("/api/v1/generations", params=query)).json()
        older = False
        for item in body["items"]:
            if item["id"] in ids:
                if item["credits"]["charged"].get("sim"):
                    seen.add(item["id"])
            else:
                older = True  # created before this phase: the rest of the list is older still
        cursor = body.get("next_cursor")
        if older or not cursor or len(seen) == len(ids):
            return len(seen)


async def balance(db: Any) -> tuple[int, int]:
    doc = await db["balances"].find_one({"_id": SYSTEM_BALANCE}) or {}
    return doc.get("spent", 0), doc.get("reserved", 0)


async def consumer_backlogs(js: Any) -> dict[str, int]:
    out = {}
    for stream, durable in CONSUMERS:
        with suppress(Exception):
            info = await js.consumer_info(stream, durable)
            out[durable] = info.num_pending + info.num_ack_pending
    return out


async def sample_backlogs(js: Any, peaks: dict[str, int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for name, value in (await consumer_backlogs(js)).items():
            peaks[name] = max(peaks.get(name, 0), value)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def loop_lag(lags: list[float], stop: asyncio.Event, every: float = 0.05) -> None:
    """How late a 50 ms sleep wakes up: this process's event-loop lag."""
    while not stop.is_set():
        t = time.monotonic()
        await asyncio.sleep(every)
        lags.append(time.monotonic() - t - every)


async def stream_messages(js: Any) -> int:
    total = 0
    for stream in (subjects.GENERATIONS_STREAM, subjects.CREDITS_STREAM):
        total += (await js.stream_info(stream)).state.messages
    return total


async def consumer_limits(js: Any) -> dict[str, dict[str, Any]]:
    """The settings of each durable that shape throughput and polling (as the server reports them)."""
    out = {}
    for stream, durable in CONSUMERS:
        with suppress(Exception):
            config = (await js.consumer_info(stream, durable)).config
            out[durable] = {
                "max_ack_pending": config.max_ack_pending,
                "ack_wait_s": config.ack_wait,
                "max_deliver": config.max_deliver,
            }
    return out
