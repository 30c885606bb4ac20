"""Outages are waited out: NATS stopped for longer than the retry budget, then MongoDB stopped for 30 s,
mid-run. Services say not ready meanwhile and resume by themselves; every job ends, nothing legitimate
is dead-lettered, and the money adds up."""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
import time
from pathlib import Path

import httpx
import nats
import pytest
from conftest import Servers, build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_billing.invariants import check_account
from pixsim_contracts import GenerationRequested, OperationType, new_id, subjects
from pixsim_runtime import local_servers
from pixsim_runtime.bus_auth import BusCredentials
from pixsim_runtime.inprocess import serve
from support import TERMINAL, api_client, create, mongo_db

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

DB = "outages"


async def _statuses(api: httpx.AsyncClient, ids: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for gid in ids:
        try:
            out[gid] = (await api.get(f"/api/v1/generations/{gid}")).json().get("status")
        except (httpx.HTTPError, ValueError):
            out[gid] = None
    return out


async def _ready(url: str) -> int:
    async with httpx.AsyncClient(timeout=15) as client:
        return (await client.get(f"{url}/readyz")).status_code


async def _until(predicate, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def test_nats_and_mongodb_outages_are_waited_out(sim_fake, caplog):
    caplog.set_level(logging.WARNING, logger="pixsim_runtime.consumers")
    work = Path(tempfile.mkdtemp(prefix="pixsim-outages-"))
    nats_port, mongo_port = local_servers.free_port(), local_servers.free_port()
    credentials = BusCredentials.ensure(work / "nats-credentials")  # the same users across the restart
    nats_server = local_servers.start_nats(port=nats_port, store_dir=work / "js", credentials=credentials)
    mongo_server = local_servers.start_mongo(port=mongo_port, db_path=work / "mongo.db")
    servers = Servers(nats_server.url_as("admin"), mongo_server.url, credentials)
    # 2 attempts, 0.1 s first backoff: the retry budget is a fraction of a second.
    # MongoDB calls give up after 1 s, so an outage fails many deliveries.
    settings = service_settings(
        servers, db=DB, PIXSIM_MAX_ATTEMPTS=2, PIXSIM_MONGO_TIMEOUT=1, PIXSIM_ORPHAN_EVENT_WAIT=120
    )
    try:
        async with serve(*build_apps(settings, TracerProvider())) as served, api_client(served[0].url) as api:
            ids = [
                (await create(api, {"prompt": f"before {i}", "duration": 1 + i % 3, "latency": 2}))["id"]
                for i in range(12)
            ]

            nats_server.stop(signal.SIGKILL)  # NATS away, mid-dispatch, for longer than any publish timeout
            await asyncio.sleep(1)
            assert {await _ready(s.url) for s in served} == {503}
            await asyncio.sleep(14)
            nats_server = local_servers.start_nats(
                port=nats_port, store_dir=work / "js", credentials=credentials
            )
            await _until(lambda: _all_ready(served), "every service to be ready after NATS came back", 60)
            ids += [
                (await create(api, {"prompt": f"between {i}", "duration": 1, "latency": 2}))["id"]
                for i in range(8)
            ]
            await asyncio.sleep(1)

            mongo_server.stop(
                signal.SIGTERM
            )  # MongoDB away for 30 s, with jobs in flight and new ones coming
            await asyncio.sleep(1)
            assert {await _ready(s.url) for s in served} == {503}
            ids += await _publish_upstream(nats_server.url_as("upstream"), 8)
            await asyncio.sleep(29)
            mongo_server = local_servers.start_mongo(port=mongo_port, db_path=work / "mongo.db")
            await _until(lambda: _all_ready(served), "every service to be ready after MongoDB came back", 60)

            async def all_ended() -> bool:
                return all(s in TERMINAL for s in (await _statuses(api, ids)).values())

            await _until(all_ended, "every job to end", 120)
            final = await _statuses(api, ids)
            assert set(final.values()) == {"completed"}, final

            ledger = mongo_db(mongo_server.url, DB)["ledger"]

            async def all_charged() -> bool:
                return await ledger.count_documents({"kind": "charged"}) >= len(ids)

            # Billing books on its own time: it may still be waiting out the outage (its retry wait grows
            # to 5 s) when the read model already shows every job completed.
            await _until(all_charged, "every job to be charged", 60)

        nc = await nats.connect(nats_server.url_as("admin"))
        try:
            dead = (await nc.jetstream().stream_info(subjects.DLQ_STREAM)).state.messages
        finally:
            await nc.close()
        assert dead == 0, "a legitimate message was dead-lettered during an outage"
        waited = [r.getMessage() for r in caplog.records if "(not counted)" in r.getMessage()]
        assert any("ServerSelectionTimeoutError" in m for m in waited), [
            r.getMessage()[:200] for r in caplog.records
        ][-30:]
        db = mongo_db(mongo_server.url, DB)
        assert await db["ledger"].count_documents({"kind": "charged"}) == len(ids)  # and only once
        assert await check_account(db, "system-sim") == []
    finally:
        nats_server.stop()
        mongo_server.stop()


async def _publish_upstream(url: str, n: int) -> list[str]:
    """Requests published straight onto NATS by an upstream system (as the `upstream` user)."""
    nc = await nats.connect(url, inbox_prefix="_INBOX.upstream")
    ids = []
    try:
        js = nc.jetstream()
        for i in range(n):
            event = GenerationRequested(
                generation_id=new_id(),
                provider_id="sim",
                operation_type=OperationType.TEXT_TO_VIDEO,
                params={"prompt": f"upstream {i}", "duration": 1, "latency": 1},
            )
            await js.publish(
                event.subject,
                event.model_dump_json().encode(),
                headers={"Nats-Msg-Id": event.generation_id},
                timeout=10,
            )
            ids.append(event.generation_id)
    finally:
        await nc.close()
    return ids


async def _all_ready(served) -> bool:
    try:
        return {await _ready(s.url) for s in served} == {200}
    except httpx.HTTPError:
        return False
