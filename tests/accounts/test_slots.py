"""Concurrency slots are leases: correct with two dispatcher replicas, and back when a job or its holder ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from accounts.kit import MANIFEST, running, wait_all
from pixsim_contracts import new_id
from pixsim_dispatcher.pool import AccountPool, Acquired, Wait
from pixsim_runtime.accounts import new_account
from support import mongo_db

pytestmark = pytest.mark.system


async def test_two_replicas_never_run_two_jobs_at_once_on_a_one_slot_account(fresh_servers, acct_fake):
    acct_fake.latency = 0.1
    async with running(fresh_servers, acct_fake, dispatchers=2) as system:
        account = await system.account("tok-one-slot", concurrency_limit=1, credits={"sim": 100})
        gids = [await system.generate(prompt=f"job {i}") for i in range(20)]
        done = await wait_all(system, gids, timeout=60)

        assert {d["status"] for d in done.values()} == {"completed"}
        assert {d["account_id"] for d in done.values()} == {account["id"]}
        assert acct_fake.max_running["tok-one-slot"] == 1  # the provider never saw two at once
        accepted = [s for s in acct_fake.submits if s[2] == 201]
        assert len(accepted) == 20  # each job ran once
        holders = {d.get("dispatcher") for d in await system.db["dispatches"].find({}).to_list()}
        assert len(holders) == 2, holders  # both replicas took jobs
        view = await system.wait_account(account["id"], lambda v: v["balances"]["sim"]["balance"] == 80)
        assert view["slots_in_use"] == 0 and view["balances"]["sim"]["available"] == 80


# -- the lease mechanics, against MongoDB directly ---------------------------------------------------
async def _pool(servers, ttl: float, submitted: set[str] | None = None):
    db = mongo_db(servers.mongo_url, f"pool_{new_id()}")
    doc = new_account(
        "acc_p",
        provider_id="acct",
        email=None,
        credentials="",
        priority=0,
        concurrency_limit=1,
        owner_id="u1",
        now=datetime.now(UTC),
    )
    await db["accounts"].insert_one({**doc, "available": {"sim": 10}, "tracked": ["sim"]})

    async def is_submitted(gid: str) -> bool:
        return gid in (submitted or set())

    return db, AccountPool(db, None, holder="test", lease_ttl_s=ttl, is_submitted=is_submitted)


async def test_a_slot_whose_holder_died_comes_back_with_its_credits(servers):
    db, pool = await _pool(servers, ttl=30)
    now = datetime.now(UTC)
    first = await pool.acquire(MANIFEST, "g1", {"sim": 4}, None, now, "u1")
    assert isinstance(first, Acquired)
    assert isinstance(
        await pool.acquire(MANIFEST, "g2", {"sim": 4}, None, now, "u1"), Wait
    )  # the one slot is taken
    # The holder of g1 dies without a word; once its lease has expired the slot and the hold come back.
    later = now + timedelta(seconds=31)
    second = await pool.acquire(MANIFEST, "g2", {"sim": 4}, None, later, "u1")
    assert isinstance(second, Acquired)
    doc = await db["accounts"].find_one({"_id": "acc_p"})
    assert set(doc["leases"]) == {"g2"} and doc["slots_used"] == 1 and doc["available"]["sim"] == 6
    # A repeated acquire for the same job (a redelivery) reuses its lease instead of taking a second one.
    again = await pool.acquire(MANIFEST, "g2", {"sim": 4}, None, later, "u1")
    assert isinstance(again, Acquired) and again.lease.token == second.lease.token
    assert (await db["accounts"].find_one({"_id": "acc_p"}))["slots_used"] == 1


async def test_an_expired_lease_of_a_submitted_job_returns_the_slot_but_leaves_the_credits_to_billing(
    servers,
):
    db, pool = await _pool(servers, ttl=30, submitted={"g1"})
    now = datetime.now(UTC)
    first = await pool.acquire(MANIFEST, "g1", {"sim": 4}, None, now, "u1")
    assert isinstance(first, Acquired)
    await pool.settle_by_billing(first.lease, (now + timedelta(seconds=5)).timestamp())
    lease = (await db["accounts"].find_one({"_id": "acc_p"}))["leases"]["g1"]
    assert lease["settled"] is True and isinstance(lease["expires_at"], float)
    second = await pool.acquire(MANIFEST, "g2", {"sim": 4}, None, now + timedelta(seconds=6), "u1")
    assert isinstance(second, Acquired)
    # g1's 4 stay held until billing books its charge or release; g2 took 4 more.
    assert (await db["accounts"].find_one({"_id": "acc_p"}))["available"]["sim"] == 2
    assert await pool.release("acc_p", "g1") is False  # already gone: ending twice changes nothing
    assert await pool.release("acc_p", "g2", return_credits=True) is True
    assert await pool.release("acc_p", "g2", return_credits=True) is False
    doc = await db["accounts"].find_one({"_id": "acc_p"})
    assert doc["slots_used"] == 0 and doc["leases"] == {} and doc["available"]["sim"] == 6
