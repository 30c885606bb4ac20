"""One chaos run: start the cluster, send the load while the faults happen, wait for every generation to end,
then check and print the figures. The exit code is 0 only when every figure is 0."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from pymongo import AsyncMongoClient

from . import checks
from .cluster import DB_NAME, Cluster, say
from .faults import run_faults, schedule
from .load import Request, Sender, plan, quiet

ACCOUNTS = 3
ACCOUNT_SLOTS = 6
POISON = 3


@dataclass
class Options:
    generations: int = 1000
    rate: float = 4.0  # generations started per second
    faults: str = "full"  # or "light"
    seed: int = 1
    drain_timeout: float = 600.0
    data_dir: Path | None = None
    keep: bool = False
    summary: Path | None = None  # where to write the figures and findings as JSON


def fake_knobs(opts: Options) -> dict[str, object]:
    """A slow, flaky provider without idempotency of its own: what the dispatcher must cope with."""
    return {
        "latency": 1,
        "latency_max": 8,
        "fail_submit_rate": 0.05,
        "accept_then_stall_rate": 0.02,
        "accept_then_drop_rate": 0.02,
        "stall_s": 40,
        "idempotency": False,
        "seed": opts.seed,
    }


#: Differs from production: 8 submit attempts (backoff up to ~60 s in all) so a provider outage of 20 s is
#: ridden out rather than failing the jobs that meet it. Everything else is at its default.
SERVICE_ENV = {"PIXSIM_SUBMIT_ATTEMPTS": "8"}


async def run(opts: Options) -> int:
    data = opts.data_dir or Path(tempfile.mkdtemp(prefix="pixsim-chaos-"))
    data.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(data, fake_knobs(opts), dict(SERVICE_ENV))
    began = time.monotonic()
    found = checks.Findings()
    fault_log: list[str] = []
    try:
        await cluster.start()
        startup_s = time.monotonic() - began
        async with Sender(
            cluster.gateway_url, cluster.admin_key, partial(cluster.nats_connect, "upstream")
        ) as sender:
            accounts = await sender.create_accounts(ACCOUNTS, ACCOUNT_SLOTS)
            poison = await sender.publish_poison(POISON)
            requests = plan(opts.generations, accounts, opts.seed)
            _describe(requests, opts, accounts)
            load_began = time.monotonic()
            send_s = opts.generations / opts.rate
            await asyncio.gather(
                sender.send_all(requests, opts.rate),
                run_faults(cluster, schedule(opts.faults), send_s, fault_log),
            )
            load_s = time.monotonic() - load_began
        ids = [gid for r in requests for gid in r.ids]
        say(f"load sent and faults over after {load_s:.0f}s; waiting for {len(ids)} generations to end")
        db = AsyncMongoClient(cluster.mongo_url, tz_aware=True)[DB_NAME]
        admin = await cluster.nats_connect("admin", error_cb=quiet)
        drain_began = time.monotonic()
        docs = await checks.wait_ended(db, admin, ids, opts.drain_timeout)
        busy = await checks.wait_idle(admin, 120)
        if busy:
            found.details.append("consumers still busy at the deadline: " + "; ".join(busy))
        drain_s = time.monotonic() - drain_began
        await checks.store_figures(db, admin, requests, docs, poison, found)
        await admin.close()
        await db.client.close()
    finally:
        dump = cluster.close()
    figures = found.figures
    figures.double_submitted += checks.provider_double_submits(
        dump, {g for r in requests for g in r.ids}, found.details
    )
    total_s = time.monotonic() - began
    _report(requests, docs, dump, fault_log, found.details, sender.cancels_sent)
    unaccepted = [r for r in requests if not r.accepted]
    say(
        f"duration: {total_s:.0f}s in all (start-up {startup_s:.0f}s, load and faults {load_s:.0f}s, "
        f"drain {drain_s:.0f}s); data in {data}"
    )
    if unaccepted:
        say(
            f"UNACCEPTED: {len(unaccepted)} requests never accepted: "
            + "; ".join(f"{r.key}: {r.errors[-1:]}" for r in unaccepted[:10])
        )
    print(figures.line(), flush=True)
    ok = figures.ok and not unaccepted
    if opts.summary is not None:
        statuses = Counter(docs.get(gid, {}).get("status", "missing") for r in requests for gid in r.ids)
        opts.summary.write_text(
            json.dumps(
                {
                    "ok": ok,
                    "figures": asdict(figures),
                    "unaccepted": len(unaccepted),
                    "stuck": found.stuck,
                    "legit_dlq": found.legit_dlq,
                    "duration_s": round(total_s),
                    "faults": fault_log,
                    "statuses": statuses,
                },
                indent=1,
            )
        )
    if ok and not opts.keep and opts.data_dir is None:
        shutil.rmtree(data, ignore_errors=True)
    return 0 if ok else 1


def _describe(requests: list[Request], opts: Options, accounts: list[str]) -> None:
    paths = Counter(r.path for r in requests)
    say(
        f"{len(requests)} generations at {opts.rate:g}/s: {paths['http']} over HTTP, {paths['nats']} over NATS; "
        f"{sum(r.duplicate for r in requests)} sent twice, {sum(r.cancel for r in requests)} to be cancelled, "
        f"{sum('account_id' in r.body for r in requests)} pinned to {len(accounts)} accounts "
        f"({ACCOUNT_SLOTS} slots each); faults: {opts.faults}"
    )


def _report(
    requests: list[Request],
    docs: dict[str, dict],
    dump: dict | None,
    fault_log: list[str],
    details: list[str],
    cancels: int,
) -> None:
    say("faults:")
    for line in fault_log:
        say(f"  {line}")
    statuses = Counter(docs.get(gid, {}).get("status", "missing") for r in requests for gid in r.ids)
    say("final status: " + " ".join(f"{s}={n}" for s, n in sorted(statuses.items())))
    codes = Counter((d.get("error") or {}).get("code") for d in docs.values() if d.get("status") == "failed")
    if codes:
        say("failed by code: " + ", ".join(f"{c}={n}" for c, n in codes.most_common()))
    resent = sum(r.sends - 1 - r.duplicate for r in requests if r.sends > 1)
    dropped = [r.dropped_duplicate for r in requests if r.path == "nats" and r.duplicate]
    say(
        f"client: {resent} sends retried after an error; NATS duplicates dropped by JetStream "
        f"{sum(bool(d) for d in dropped)}/{len(dropped)}; {cancels} cancels sent"
    )
    if dump is not None:
        say(
            f"provider fake: {len(dump['jobs'])} jobs; faults served: "
            + ", ".join(f"{k} x{v}" for k, v in dump["faults"].items())
        )
    for line in details:
        say(line)
