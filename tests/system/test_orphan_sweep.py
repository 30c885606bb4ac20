"""Submits whose outcome the provider cannot tell at once: the job stays pending with its credits held,
and the orphan sweep asks again. Found → adopted (completes, one provider job, charged once); provably
absent → the hold comes back and the job fails `submit_not_accepted`; still unknown after
`PIXSIM_UNKNOWN_GIVE_UP` → `submit_outcome_unknown`, hold back. Balances equal the ledger throughout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from conftest import service_settings
from pixsim_billing.invariants import check_account
from pixsim_runtime.inprocess import serve
from support import api_client, ledger_for, mongo_db, wait_for, wait_ledger
from system.kit import apps_with_an_impatient_dispatcher

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

CREDITS = 100


@asynccontextmanager
async def _system(servers: Any, db: str, **overrides: Any) -> AsyncIterator[tuple[Any, Any, str]]:
    """Gateway, poller and billing, and a dispatcher whose sim adapter gives up after 1 s; one sim account
    with tracked credits. Yields (api, db, account id)."""
    settings = service_settings(
        servers, db=db, PIXSIM_ORPHAN_SWEEP_INTERVAL=0.5, PIXSIM_FIND_ATTEMPTS=1, **overrides
    )
    apps = apps_with_an_impatient_dispatcher(settings, "sim")
    async with serve(*apps) as served, api_client(served[0].url) as api:
        resp = await api.post(
            "/api/v1/accounts",
            json={
                "provider_id": "sim",
                "raw_data": {"token": f"tok-{db}"},
                "credits": {"sim": CREDITS},
                "concurrency_limit": 4,
            },
        )
        assert resp.status_code == 201, resp.text
        yield api, mongo_db(servers.mongo_url, db), resp.json()["id"]


async def _generate(api: Any, account: str, prompt: str) -> str:
    resp = await api.post(
        "/api/v1/generations",
        json={
            "provider_id": "sim",
            "operation_type": "text_to_video",
            "account_id": account,
            "params": {"prompt": prompt, "duration": 2, "latency": 0.5},
        },
    )
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


async def _until_unknown(db: Any, gid: str, timeout: float = 30) -> dict[str, Any]:
    for _ in range(int(timeout / 0.05)):
        record = await db["dispatches"].find_one({"_id": gid})
        if record and record.get("state") == "unknown":
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"{gid} never became unknown: {record}")


async def _held(api: Any, db: Any, gid: str, account: str) -> None:
    """While nobody knows: the job is still `requested`, its slot and its 2 credits held, nothing in the ledger."""
    assert (await api.get(f"/api/v1/generations/{gid}")).json()["status"] == "requested"
    doc = await db["accounts"].find_one({"_id": account})
    assert doc["available"] == {"sim": CREDITS - 2} and doc["slots_used"] == 1 and gid in doc["leases"]


async def _all_back(db: Any, account: str, spent: int) -> None:
    for _ in range(200):
        doc = await db["accounts"].find_one({"_id": account})
        if doc["slots_used"] == 0 and doc["available"] == {"sim": CREDITS - spent}:
            break
        await asyncio.sleep(0.05)
    assert (doc["slots_used"], doc["available"], doc["leases"]) == (0, {"sim": CREDITS - spent}, {})
    assert await check_account(db, account) == []


async def test_the_sweep_adopts_a_job_the_provider_could_not_find_at_first(fresh_servers, sim_fake):
    sim_fake.stall_s = 3.0  # the adapter gives up after 1 s, with the job already created
    async with _system(fresh_servers, "sweep_adopts") as (api, db, account):
        sim_fake.accept_then_stall, sim_fake.fail_lookups = 1, 10_000  # the provider cannot say, for now
        gid = await _generate(api, account, "accepted, but nobody could tell")
        record = await _until_unknown(db, gid)
        assert record["unknown_why"] == "provider_unavailable", record
        await asyncio.sleep(2)  # a few sweeps that still cannot tell
        await _held(api, db, gid, account)
        sim_fake.fail_lookups = 0  # the provider's job index is back
        body = await wait_for(api, gid, timeout=60)
        assert body["status"] == "completed", body
        [remote] = sim_fake.jobs_with_reference(gid)  # adopted, never submitted again
        assert body["provider_job_id"] == remote.id
        entries = await wait_ledger(fresh_servers.mongo_url, "sweep_adopts", gid, {"reserved", "charged"})
        assert sorted(e["kind"] for e in entries) == ["charged", "reserved"], entries
        await _all_back(db, account, spent=2)


async def test_the_sweep_releases_a_job_the_provider_never_created(fresh_servers, sim_fake):
    async with _system(fresh_servers, "sweep_releases") as (api, db, account):
        sim_fake.drop_submits, sim_fake.fail_lookups = 1, 10_000
        gid = await _generate(api, account, "dropped before the provider created it")
        await _until_unknown(db, gid)
        await _held(api, db, gid, account)
        sim_fake.fail_lookups = 0
        body = await wait_for(api, gid, timeout=60)
        assert body["status"] == "failed" and body["error"]["code"] == "submit_not_accepted", body
        assert body["error"]["retryable"] is True
        assert sim_fake.jobs_with_reference(gid) == []
        await _all_back(db, account, spent=0)
        assert await ledger_for(fresh_servers.mongo_url, "sweep_releases", gid) == []  # never reserved


async def test_a_job_nobody_can_tell_about_gives_its_credits_back_after_the_give_up_time(
    fresh_servers, sim_fake
):
    async with _system(fresh_servers, "sweep_gives_up", PIXSIM_UNKNOWN_GIVE_UP=3) as (api, db, account):
        sim_fake.drop_submits, sim_fake.fail_lookups = 1, 10_000  # and the index never comes back
        gid = await _generate(api, account, "nobody will ever know")
        await _until_unknown(db, gid)
        await _held(api, db, gid, account)
        body = await wait_for(api, gid, timeout=60)
        assert body["status"] == "failed" and body["error"]["code"] == "submit_outcome_unknown", body
        assert "was not submitted again" in body["error"]["message"]
        await _all_back(db, account, spent=0)
