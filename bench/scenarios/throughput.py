"""Scenario `throughput`: generations per second against a raw JetStream round trip, measured in one run,
with the CPU each process spends per generation and the MongoDB round trips per generation.

Paths (sim jobs of latency 0, so this is the pipeline's own cost, not provider waiting):
1.  raw:  nats-py JetStream round trip (harness.raw), messages/s: the baseline;
2.  http: the four services in this process (one event loop), N generations POSTed to the gateway;
2b. nats: the same in-process services, N generations published on NATS (the upstream path);
3.  proc: the four services as their own processes (as `make run`), N generations POSTed to the gateway:
          CPU ms per generation per process, and MongoDB commands per generation summed over the services.
Each path: until every generation is completed in the read model and billed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from typing import Any

from harness.client import attach, attach_system
from harness.context import Context
from harness.inprocess import ServiceLogs, SpanStats, build_apps, service_settings
from harness.load import PARAMS
from harness.measure import cpu_ms_per_item, ratio
from harness.mongo_stats import MongoStats
from harness.phase import CounterProbe, MongoProbe, run_phase
from harness.raw import raw_baseline
from harness.servers import start_servers
from pixsim_gateway.api_keys import new_token
from pixsim_provider_sdk.safe_fetch import allow_in_env
from pixsim_runtime.inprocess import serve
from pixsim_runtime.telemetry import init_telemetry
from pymongo import AsyncMongoClient, monitoring

from scenarios.throughput_report import report  # noqa: F401 - the scenario's table

NAME = "throughput"
#: Issue 11's targets for the pipeline's own cost per generation.
TARGET_CPU_MS = 25.0  # CPU ms per generation, all processes of the system together
TARGET_MONGO_OPS = 10.0  # MongoDB round trips per generation
#: The processes of the system proper (not the fake provider, not the load generator).
SYSTEM_PROCESSES = ["gateway", "dispatcher", "poller", "billing", "nats_server", "nx_27017"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("throughput")
    g.add_argument("--n", type=int, default=150, help="generations per measured path")
    g.add_argument("--raw-n", type=int, default=5000, help="messages in the raw JetStream round trip")
    g.add_argument("--concurrency", type=int, default=20, help="requests / publishes in flight")
    g.add_argument("--warmup", type=int, default=10, help="generations before each measured path")
    g.add_argument(
        "--poll-min-interval",
        type=float,
        default=0.05,
        help="PIXSIM_POLL_MIN_INTERVAL of the in-process paths (s); processes use production's",
    )
    g.add_argument(
        "--poll-max-interval",
        type=float,
        default=0.5,
        help="PIXSIM_POLL_MAX_INTERVAL of the in-process paths (s)",
    )
    g.add_argument("--timeout", type=float, default=300, help="give up on a path after this (s)")
    g.add_argument(
        "--fake-inprocess",
        action="store_true",
        help="in-process paths: run the sim fake as a thread in this process (as the tests do)",
    )
    g.add_argument(
        "--span-stats",
        action="store_true",
        help="in-process paths: aggregate span durations by name (diagnosis only: adds work)",
    )
    g.add_argument("--no-inprocess", action="store_true", help="skip paths 1, 2 and 2b")
    g.add_argument("--no-processes", action="store_true", help="skip path 3 (services as processes)")


async def run(ctx: Context) -> dict:
    args = ctx.args
    result: dict[str, Any] = {
        "settings": {
            "n": args.n,
            "raw_n": args.raw_n,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "params": PARAMS,
            "sim_latency": 0,
            "inprocess_poll_interval_s": [args.poll_min_interval, args.poll_max_interval],
            "processes_poll_settings": "production defaults (1.0 s first, x1.5, 15 s cap)",
            "sim_fake": "thread in the bench process" if args.fake_inprocess else "own process",
            "mongo_command_listener": not args.no_mongo_stats,
            "targets": {"cpu_ms_per_generation": TARGET_CPU_MS, "mongo_ops_per_generation": TARGET_MONGO_OPS},
        }
    }
    if not args.no_inprocess:
        result.update(await _inprocess(ctx))
    if not args.no_processes:
        result["processes"] = await _processes(ctx)
    result["ratios"] = _ratios(result)
    return result


# -- paths 1, 2, 2b: services in this process ---------------------------------------------------------
async def _inprocess(ctx: Context) -> dict:
    args, console = ctx.args, ctx.console
    storage = tempfile.mkdtemp(prefix="pixsim-bench-storage-")
    with console.status("starting nats-server, nx-27017 and the sim fake"):
        servers = start_servers(fake_backlog=args.fake_backlog, fake_inprocess=args.fake_inprocess)
    saved_env = dict(os.environ)
    try:
        os.environ["PIXSIM_SIM_BASE_URL"] = servers.fake.url
        allow_in_env(servers.fake.url)  # as `make run`: the archiver may fetch results from the fake
        pids = {"bench_process": os.getpid(), **servers.pids}
        with console.status(f"1. raw JetStream round trip, {args.raw_n} messages"):
            raw = await raw_baseline(servers.nats.url_as("admin"), args.raw_n, args.concurrency, pids)
        console.print(f"1. raw JetStream: {raw['msgs_per_s']:,.0f} msg/s")

        checker = AsyncMongoClient(servers.mongo.url, tz_aware=True)  # made before the listener: not counted
        mongo_stats = None if args.no_mongo_stats else MongoStats()
        if mongo_stats:
            monitoring.register(mongo_stats)  # before the services' clients exist
        tracer_provider = init_telemetry("pixsim-bench")  # no OTEL_* set: spans are made, nothing exported
        span_stats = SpanStats() if args.span_stats else None
        if span_stats:
            tracer_provider.add_span_processor(span_stats)
        logs = ServiceLogs()
        logs.install()
        settings = service_settings(
            servers.nats.url,
            servers.mongo.url,
            args.poll_min_interval,
            args.poll_max_interval,
            str(servers.nats.credentials.directory),
            storage,
        )
        key = new_token().token
        settings["PIXSIM_BOOTSTRAP_ADMIN_KEY"] = key  # the API needs a credential, as in production
        probes = [
            p
            for p in (MongoProbe(mongo_stats) if mongo_stats else None, CounterProbe(logs.counts), span_stats)
            if p is not None
        ]
        phases: dict[str, dict] = {}
        async with (
            serve(*build_apps(settings, tracer_provider)) as served,
            attach(servers.nats, checker, served[0].url, key, args.concurrency) as client,
        ):
            for mode in ("http", "nats"):
                target = client.target(mode, pids)
                label = (
                    "2. in-process, via the gateway (HTTP)" if mode == "http" else "2b. in-process, on NATS"
                )
                if args.warmup:
                    with console.status(f"warm-up ({mode}): {args.warmup} generations"):
                        await run_phase(
                            target, args.warmup, mode=mode, concurrency=args.concurrency, timeout=args.timeout
                        )
                with console.status(f"{label}: {args.n} generations"):
                    phases[mode] = p = await run_phase(
                        target,
                        args.n,
                        mode=mode,
                        concurrency=args.concurrency,
                        timeout=args.timeout,
                        probes=probes,
                    )
                p["cpu_ms_per_generation"] = cpu_ms_per_item(p["cpu"], list(pids), p["accepted"])
                console.print(
                    f"{label}: {p['generations_per_s'] or '-'} generations/s "
                    f"({p['outcomes']}, {p['wall_s']} s)"
                )
        return {"raw": raw, "pipeline_http": phases.get("http"), "pipeline_nats": phases.get("nats")}
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        servers.stop()
        shutil.rmtree(storage, ignore_errors=True)


# -- path 3: services as processes --------------------------------------------------------------------
async def _processes(ctx: Context) -> dict:
    args, console = ctx.args, ctx.console
    system = await ctx.shared_system()
    label = "3. services as processes, via the gateway (HTTP)"
    async with attach_system(system, args.concurrency) as client:
        target = client.target("http", system.pids)
        if args.warmup:
            with console.status(f"warm-up (processes): {args.warmup} generations"):
                await run_phase(
                    target, args.warmup, mode="http", concurrency=args.concurrency, timeout=args.timeout
                )
        await client.settle()
        probes = [CounterProbe(system.log_counts)]
        if not args.no_mongo_stats:
            probes.append(MongoProbe(system.mongo_stats()))
        with console.status(f"{label}: {args.n} generations"):
            p = await run_phase(
                target, args.n, mode="http", concurrency=args.concurrency, timeout=args.timeout, probes=probes
            )
    names = list(system.pids)
    p["cpu_ms_per_generation"] = per = cpu_ms_per_item(p["cpu"], names, p["accepted"])
    p["cpu_ms_per_generation_system"] = round(sum(per[n] for n in SYSTEM_PROCESSES if n in per), 2)
    p["cpu_ms_per_generation_all"] = round(sum(per.values()), 2)
    console.print(
        f"{label}: {p['generations_per_s'] or '-'} generations/s ({p['outcomes']}, {p['wall_s']} s)"
    )
    return p


def _ratios(r: dict) -> dict:
    out: dict[str, float | None] = {}
    raw = (r.get("raw") or {}).get("msgs_per_s")
    for key, name in (("pipeline_http", "http"), ("pipeline_nats", "nats"), ("processes", "processes")):
        p = r.get(key) or {}
        if p.get("generations_per_s") and raw:
            out[f"{name}_generations_per_raw_msg"] = ratio(p["generations_per_s"], raw, 5)
            out[f"{name}_events_per_raw_msg"] = ratio(
                p["generations_per_s"] * p["events_per_generation"], raw, 4
            )
    h, b, proc = (r.get(k) or {} for k in ("pipeline_http", "pipeline_nats", "processes"))
    out["http_over_nats"] = ratio(h.get("generations_per_s"), b.get("generations_per_s"), 3)
    out["processes_over_inprocess_http"] = ratio(proc.get("generations_per_s"), h.get("generations_per_s"), 3)
    if proc.get("cpu_ms_per_generation_system") is not None:
        out["cpu_ms_per_generation_over_target"] = ratio(proc["cpu_ms_per_generation_system"], TARGET_CPU_MS)
    if proc.get("mongo"):
        out["mongo_ops_per_generation_over_target"] = ratio(
            proc["mongo"]["ops_per_generation"], TARGET_MONGO_OPS
        )
    return {k: v for k, v in out.items() if v is not None}


def ok(r: dict) -> bool:
    return all(
        p["complete"] for p in (r.get("pipeline_http"), r.get("pipeline_nats"), r.get("processes")) if p
    )
