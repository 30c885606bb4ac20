"""Waits and reads shared by the tests (tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import nats
from pixsim_gateway.api_keys import new_token
from pymongo import AsyncMongoClient, monitoring

REPO = Path(__file__).resolve().parents[1]
TERMINAL = {"completed", "failed", "filtered", "cancelled"}
#: The admin key every test gateway bootstraps (`service_settings`); `AUTH` is its header.
ADMIN_KEY = new_token().token
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def api_client(base_url: str, *, token: str = ADMIN_KEY, timeout: float = 30) -> httpx.AsyncClient:
    """A client of the gateway's API with a credential."""
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, headers={"Authorization": f"Bearer {token}"})


async def create(
    api: httpx.AsyncClient,
    params: dict[str, Any],
    *,
    provider: str = "sim",
    operation: str = "text_to_video",
    **extra: Any,
) -> dict[str, Any]:
    resp = await api.post(
        "/api/v1/generations",
        json={"provider_id": provider, "operation_type": operation, "params": params, **extra},
    )
    assert resp.status_code == 202, resp.text
    return resp.json()


async def wait_for(
    api: httpx.AsyncClient, gid: str, statuses: set[str] = TERMINAL, timeout: float = 30
) -> dict[str, Any]:
    """Poll the read model until the generation reaches one of `statuses` and, once it has ended, its hold
    is settled there too (a charge or a release travels on the credits stream, projected on its own, so
    it can land a moment after the terminal status; a hold never settled is waited for until `timeout`).
    Now and then a consumer's fetch loses a delivery that JetStream makes again only after the ack wait
    (nats-py's pull requests, see `wait_ledger`), so a completed job may also miss its `submitted` a while."""
    deadline = time.monotonic() + timeout
    while True:
        body = (await api.get(f"/api/v1/generations/{gid}")).json()
        credits = body.get("credits") or {}
        unsettled = (
            body.get("status") in TERMINAL
            and credits.get("reserved")
            and not credits.get("charged")
            and not credits.get("released")
        ) or (
            body.get("status") == "completed" and not body.get("provider_job_id")
        )  # `submitted` still on its way
        if body.get("status") in statuses and (not unsettled or time.monotonic() > deadline):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"generation {gid} stuck at {body.get('status')!r}: {body}")
        await asyncio.sleep(0.05)


async def sse_events(
    base_url: str, gid: str, timeout: float = 30, token: str = ADMIN_KEY
) -> list[tuple[str, dict]]:
    """Every event of the generation's SSE stream until it closes (after the terminal event)."""
    events: list[tuple[str, dict]] = []
    async with (
        api_client(base_url, token=token, timeout=timeout) as client,
        client.stream("GET", f"/api/v1/generations/{gid}/events") as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        kind = None
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind:
                events.append((kind, json.loads(line[6:])))
    return events


async def wait_archive(
    api: httpx.AsyncClient, gid: str, status: str = "archived", timeout: float = 20
) -> dict:
    """Poll the generation until its archive (PixSim's stored copy of the result) has `status`."""
    deadline = time.monotonic() + timeout
    while True:
        gen = (await api.get(f"/api/v1/generations/{gid}")).json()
        if (gen.get("archive") or {}).get("status") == status:
            return gen
        if time.monotonic() > deadline:
            raise AssertionError(f"archive of {gid} is not {status}: {gen.get('archive')}")
        await asyncio.sleep(0.05)


def mongo_db(mongo_url: str, name: str):
    return AsyncMongoClient(mongo_url, tz_aware=True)[name]


async def ledger_for(mongo_url: str, db: str, gid: str) -> list[dict[str, Any]]:
    """The generation's ledger entries once billing has booked them (waits for `applied`)."""
    coll = mongo_db(mongo_url, db)["ledger"]
    return await coll.find({"generation_id": gid}).sort("occurred_at", 1).to_list()


async def wait_ledger(mongo_url: str, db: str, gid: str, kinds: set[str], timeout: float = 100) -> list[dict]:
    # Longer than a few of billing's 30 s ack waits: now and then nats-py hands a message to a pull request that has
    # already expired on the client's side (see its `_fetch_n`), and JetStream delivers it again only after
    # the ack wait. Late, never lost, never twice; a test must not mistake that for a missing entry.
    deadline = time.monotonic() + timeout
    while True:
        entries = await ledger_for(mongo_url, db, gid)
        if {e["kind"] for e in entries if e.get("applied")} >= kinds:
            return entries
        if time.monotonic() > deadline:
            raise AssertionError(
                f"ledger for {gid} has {[(e['kind'], e.get('applied')) for e in entries]}, expected {kinds}"
            )
        await asyncio.sleep(0.05)


async def wait_consumer_idle(nats_url: str, stream: str, durable: str, timeout: float = 15) -> None:
    """Until the durable consumer has nothing pending or unacknowledged."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while True:
            info = await js.consumer_info(stream, durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"consumer {durable} still busy: {info}")
            await asyncio.sleep(0.05)
    finally:
        await nc.close()


def run_pytest(*args: str, cwd: str | os.PathLike[str], pythonpath: list[str] = (), timeout: float = 300):
    """pytest in a subprocess with the repository's configuration and only the plugins it needs (autoloading
    every installed plugin costs seconds), for test files written outside the repository."""
    env = {
        **os.environ,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "pytest_asyncio.plugin",
        "-p",
        "pytest_timeout",
        "-q",
        "-c",
        str(REPO / "pyproject.toml"),
        "--rootdir",
        str(cwd),
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=timeout, env=env, cwd=cwd
    )


async def dead_letters_since(js: Any, service: str, since_seq: int = 0) -> list[dict[str, Any]]:
    """The dead letters `service` wrote after DLQ stream sequence `since_seq`."""
    import nats
    from pixsim_contracts import subjects

    sub = await js.subscribe(subjects.dlq(service), ordered_consumer=True)
    found = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                return found
            if msg.metadata.sequence.stream > since_seq:
                found.append(json.loads(msg.data))
    finally:
        await sub.unsubscribe()


class Commands(monitoring.CommandListener):
    """Every command a MongoDB client sends, as `<command> <collection>`: in order (`sent`) and counted
    (`count`, `snapshot()`). Register it with `AsyncMongoClient(url, event_listeners=[commands])`."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.count: Counter[str] = Counter()
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        name = f"{event.command_name} {target}" if isinstance(target, str) else event.command_name
        with self._lock:
            self.sent.append(name)
            self.count[name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.count)
