"""Claims of the poll schedule against the real MongoDB wire server: each due job is leased by exactly
one claim, even when replicas claim the same jobs at the same moment, and what a claim returns is what
is stored (its lease id included), whether it took the fast path (two round trips) or the read-back."""

from __future__ import annotations

import asyncio
import time
import uuid

from pixsim_poller.store import PollStore, partitions
from support import mongo_db


async def _seed(store: PollStore, n: int, now: float) -> list[str]:
    ids = [f"g{i:04d}" for i in range(n)]
    await store.polls.insert_many(
        [
            {"_id": gid, "provider_id": "sim", "next_poll_at": now - n + i, "ends_from": now - 1, "polls": 0}
            for i, gid in enumerate(ids)
        ]
    )
    return ids


async def test_a_claim_returns_the_stored_lease_of_the_earliest_due_jobs(servers):
    db = mongo_db(servers.mongo_url, f"claims-{uuid.uuid4().hex[:8]}")
    store = PollStore(db)
    now = time.time()
    ids = await _seed(store, 10, now)
    await store.polls.insert_one(
        {"_id": "later", "provider_id": "sim", "next_poll_at": now + 60, "ends_from": 0}
    )
    sim = partitions(["sim"])[0]

    got = await store.claim_some(sim, now, 30.0, 4)

    assert [r["_id"] for r in got] == ids[:4]  # the earliest due first
    stored = {d["_id"]: d for d in await store.polls.find({"_id": {"$in": ids[:4]}}).to_list()}
    for record in got:
        doc = stored[record["_id"]]
        assert (record["lease_id"], record["holder"], record["polls"]) == (doc["lease_id"], doc["holder"], 1)
        # (nx-27017 keeps floats to about a microsecond)
        assert abs(record["next_poll_at"] - doc["next_poll_at"]) < 1e-3
        assert abs(doc["lease_until"] - (now + 30.0)) < 1e-3
    assert await store.claim_some(sim, now, 30.0, 100) and not await store.claim_some(sim, now, 30.0, 100)


async def test_replicas_claiming_the_same_jobs_at_once_lease_each_job_exactly_once(servers):
    db = mongo_db(servers.mongo_url, f"claims-{uuid.uuid4().hex[:8]}")
    replicas = [PollStore(db) for _ in range(4)]
    now = time.time()
    ids = await _seed(replicas[0], 60, now)
    sim = partitions(["sim"])[0]

    async def drain(store: PollStore) -> list[dict]:
        mine: list[dict] = []
        while got := await store.claim_some(sim, now, 30.0, 8):
            mine += got
        return mine

    claimed = [r for rs in await asyncio.gather(*(drain(s) for s in replicas)) for r in rs]

    assert sorted(r["_id"] for r in claimed) == ids  # every job once, none twice
    stored = {d["_id"]: d for d in await replicas[0].polls.find({}).to_list()}
    for record in claimed:  # each claim holds the lease that is stored: its write-back will match
        assert (record["lease_id"], record["holder"]) == (
            stored[record["_id"]]["lease_id"],
            stored[record["_id"]]["holder"],
        )
        assert stored[record["_id"]]["polls"] == 1


async def test_a_claim_overtaken_between_its_read_and_its_update_returns_only_the_jobs_it_took(servers):
    db = mongo_db(servers.mongo_url, f"claims-{uuid.uuid4().hex[:8]}")
    slow, quick = PollStore(db), PollStore(db)
    now = time.time()
    ids = await _seed(slow, 6, now)
    sim = partitions(["sim"])[0]
    overtaken: list[dict] = []

    class Overtaken:  # the slow replica's collection: the quick one claims two jobs just before its update
        def __init__(self, coll) -> None:
            self.coll = coll

        def __getattr__(self, name: str):
            return getattr(self.coll, name)

        async def update_many(self, *args, **kwargs):
            overtaken.extend(await quick.claim_some(sim, now, 30.0, 2))
            return await self.coll.update_many(*args, **kwargs)

    slow.polls = Overtaken(slow.polls)  # type: ignore[assignment]

    got = await slow.claim_some(sim, now, 30.0, 6)

    assert [r["_id"] for r in overtaken] == ids[:2]
    assert [r["_id"] for r in got] == ids[2:]
    stored = {d["_id"]: d for d in await quick.polls.find({}).to_list()}
    assert all(stored[r["_id"]]["lease_id"] == r["lease_id"] for r in [*got, *overtaken])


async def test_end_polls_are_claimed_in_the_order_jobs_became_end_polls(servers):
    """A long job whose progress was polled lately goes before jobs whose end came later, although their
    `next_poll_at` is older (the first progress poll they were due for and never got, under the budget).
    Claimed in `next_poll_at` order, it waited behind every such job for as long as end polls fell due
    as fast as they were claimed: 200 s late in the 20,000-job bench."""
    db = mongo_db(servers.mongo_url, f"claims-{uuid.uuid4().hex[:8]}")
    store = PollStore(db)
    now = time.time()
    never_polled = [
        {
            "_id": f"n{i:02d}",
            "provider_id": "sim",
            "next_poll_at": now - 500 + i,
            "ends_from": now - 10 + i / 10,
        }
        for i in range(20)
    ]
    polled_lately = {"_id": "lately", "provider_id": "sim", "next_poll_at": now - 50, "ends_from": now - 20}
    progress_only = {"_id": "early", "provider_id": "sim", "next_poll_at": now - 600, "ends_from": now + 60}
    await store.polls.insert_many([*never_polled, polled_lately, progress_only])
    sim = partitions(["sim"])[0]

    ends = await store.claim_some(sim, now, 30.0, 3, ends_only=True)
    assert [r["_id"] for r in ends] == ["lately", "n00", "n01"]
    progress = await store.claim_some(sim, now, 30.0, 2)  # any due poll, the longest due first
    assert [r["_id"] for r in progress] == ["early", "n02"]
