"""The poll schedule's writes made at the same moment share one round trip, and each caller still gets
its own outcome (real MongoDB wire server): a job scheduled, scheduled again (a redelivery), or completed
after its cancel came first; an outcome kept under its lease, or refused because the lease was lost."""

from __future__ import annotations

import asyncio
import time
import uuid

from pixsim_poller.store import PollStore, partitions
from pymongo import AsyncMongoClient
from support import Commands


def _fields(gid: str, now: float) -> dict:
    return {
        "provider_id": "sim",
        "job": {"generation_id": gid},
        "next_poll_at": now,
        "ends_from": now,
        "polls": 0,
    }


async def test_schedulings_at_the_same_moment_share_a_write_and_each_is_told_what_it_did(servers) -> None:
    commands = Commands()
    client = AsyncMongoClient(servers.mongo_url, tz_aware=True, event_listeners=[commands])
    store = PollStore(client[f"store-{uuid.uuid4().hex[:8]}"])
    try:
        now = time.time()
        await store.add("scheduled", _fields("scheduled", now))
        await store.request_cancel("cancelled-first", now)  # a cancel before the job was submitted
        commands.sent.clear()
        new = [f"g{i}" for i in range(30)]
        got = await asyncio.gather(
            *(store.add(gid, _fields(gid, now)) for gid in new),
            store.add("scheduled", {**_fields("scheduled", now), "polls": 7}),  # a redelivery
            store.add("cancelled-first", _fields("cancelled-first", now)),
        )

        assert commands.sent[0] == "update polls" and commands.sent.count("update polls") == 1
        assert all(doc == {} for doc in got[:30])  # new: no cancel came first
        assert got[30] is None  # scheduled already: nothing to do
        assert got[31] is not None and got[31]["cancel_requested"] is True
        stored = {d["_id"]: d for d in await store.polls.find().to_list()}
        assert all(stored[gid]["job"] == {"generation_id": gid} for gid in [*new, "cancelled-first"])
        assert stored["scheduled"]["polls"] == 0  # the redelivery changed nothing
        assert stored["cancelled-first"]["cancel_requested"] is True
    finally:
        await client.close()


async def test_outcomes_kept_at_the_same_moment_share_a_write_and_a_lost_lease_keeps_nothing(servers) -> None:
    commands = Commands()
    client = AsyncMongoClient(servers.mongo_url, tz_aware=True, event_listeners=[commands])
    store, other = PollStore(client[f"store-{uuid.uuid4().hex[:8]}"]), None
    try:
        now = time.time()
        ids = [f"g{i}" for i in range(12)]
        await asyncio.gather(*(store.add(gid, _fields(gid, now)) for gid in ids))
        records = await store.claim_some(partitions(["sim"])[0], now, 0.5, 100)
        assert len(records) == 12
        commands.sent.clear()
        kept = await asyncio.gather(
            *(store.record_outcome(r, [f"done-{r['_id']}"], {"progress": 100}, now) for r in records[:10])
        )
        assert kept == [True] * 10 and commands.sent == ["update polls"]
        await store.close_many(ids[:10])  # their events are out: they leave the schedule

        # The last two leases run out and another replica takes one of them: its outcome is refused
        other = PollStore(store.polls.database)
        later = now + 1.0
        [taken] = await other.claim_some(partitions(["sim"])[0], later, 30.0, 1)
        lost = next(r for r in records if r["_id"] == taken["_id"])
        still = next(r for r in records[10:] if r["_id"] != taken["_id"])
        kept = await asyncio.gather(
            store.record_outcome(lost, ["mine"], {}, later), store.record_outcome(still, ["mine"], {}, later)
        )
        assert kept == [False, True]
        stored = {d["_id"]: d for d in await store.polls.find().to_list()}
        assert "outbox" not in stored[lost["_id"]] and stored[lost["_id"]]["lease_id"] == taken["lease_id"]
        assert stored[still["_id"]]["outbox"] == ["mine"]
        assert all(stored[r["_id"]]["outbox"] == [f"done-{r['_id']}"] for r in records[:10])
    finally:
        await client.close()
