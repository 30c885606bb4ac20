"""`BulkWriter`: concurrent writers share one `bulk_write`, and each gets the outcome of its own write."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from pixsim_runtime.group_commit import BulkWriter
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect, WriteError
from support import Commands


@pytest.fixture
async def counted(servers) -> AsyncIterator[tuple[AsyncCollection, BulkWriter, Commands]]:
    """A fresh collection, a `BulkWriter` on it, and the commands its client sends."""
    commands = Commands()
    client = AsyncMongoClient(servers.mongo_url, tz_aware=True, event_listeners=[commands])
    records = client[f"bulk_{uuid.uuid4().hex[:8]}"]["records"]
    try:
        yield records, BulkWriter(records), commands
    finally:
        await client.close()


async def test_concurrent_writes_share_a_round_trip_and_each_gets_its_own_outcome(counted) -> None:
    records, writer, commands = counted
    await records.insert_one({"_id": "taken", "n": 0})
    commands.sent.clear()
    ids = [f"r{i}" for i in range(40)]
    inserted = await asyncio.gather(
        *(writer.insert({"_id": i, "n": 0}) for i in ids),
        writer.insert({"_id": "taken", "n": 99}),  # exists: False, and left as it was
        writer.insert({"_id": "r3", "n": 99}),  # the same id twice in one batch: one of them wins
    )
    assert commands.sent == ["insert records"]
    assert inserted[:3] + inserted[4:40] == [True] * 39 and inserted[40] is False
    assert sorted([inserted[3], inserted[41]]) == [False, True]
    assert (await records.find_one({"_id": "taken"}))["n"] == 0
    commands.sent.clear()
    await asyncio.gather(*(writer.update({"_id": i}, {"$inc": {"n": 1}}) for i in ids + ids[:10]))
    assert commands.sent == ["update records"]
    counts = {d["_id"]: d["n"] for d in await records.find({"_id": {"$in": ids}}).to_list()}
    assert counts == {i: 2 if i in ids[:10] else 1 for i in ids}
    # One write the server refuses fails alone (an update breaking a unique index: not an insert's
    # "exists", so an error); the others in its batch are written.
    await records.create_index("tag", unique=True, sparse=True)
    await records.update_one({"_id": "r0"}, {"$set": {"tag": "t"}})
    results = await asyncio.gather(
        writer.update({"_id": "r1"}, {"$set": {"tag": "t"}}),
        writer.update({"_id": "r20"}, {"$inc": {"n": 1}}),
        return_exceptions=True,
    )
    assert isinstance(results[0], WriteError) and results[1] is True, results
    assert (await records.find_one({"_id": "r20"}))["n"] == 2


async def test_upserts_say_whether_they_inserted_and_updates_whether_they_surely_matched(counted) -> None:
    records, writer, commands = counted
    await records.insert_many([{"_id": "open", "n": 0}, {"_id": "closed", "n": 0, "closed": True}])
    commands.sent.clear()
    new = [f"u{i}" for i in range(20)]
    unclosed = {"closed": {"$exists": False}}
    inserted = await asyncio.gather(
        *(writer.upsert({"_id": i, **unclosed}, {"$set": {"n": 1}}) for i in new),
        writer.upsert({"_id": "open", **unclosed}, {"$set": {"n": 1}}),  # found: updated
        writer.upsert({"_id": "closed", **unclosed}, {"$set": {"n": 1}}),  # missed, but the _id exists
        return_exceptions=True,
    )
    assert commands.sent == ["update records"]
    assert inserted == [True] * 20 + [False, False], inserted
    stored = {d["_id"]: d["n"] for d in await records.find().to_list()}
    assert stored == {**dict.fromkeys(new, 1), "open": 1, "closed": 0}

    commands.sent.clear()
    every = await asyncio.gather(*(writer.update({"_id": i}, {"$inc": {"n": 1}}) for i in new))
    assert every == [True] * 20  # all matched: each one surely did
    some = await asyncio.gather(
        *(writer.update({"_id": i, "n": 2}, {"$inc": {"n": 1}}) for i in new[:5]),
        writer.update({"_id": "missing"}, {"$inc": {"n": 1}}),
    )
    assert some == [False] * 6  # one matched nothing, and MongoDB does not say which: none is sure
    assert commands.sent == ["update records", "update records"]
    stored = {d["_id"]: d["n"] for d in await records.find({"_id": {"$in": new}}).to_list()}
    assert stored == {i: 3 if i in new[:5] else 2 for i in new}  # written all the same


async def test_a_batch_that_cannot_be_sent_fails_every_write_in_it(servers) -> None:
    client = AsyncMongoClient(
        "mongodb://127.0.0.1:1/?directConnection=true", serverSelectionTimeoutMS=200, tz_aware=True
    )
    writer = BulkWriter(client["nowhere"]["records"])
    try:
        results = await asyncio.gather(
            writer.insert({"_id": "a"}),
            writer.update({"_id": "b"}, {"$set": {"x": 1}}),
            return_exceptions=True,
        )
        assert all(isinstance(r, AutoReconnect) for r in results), results  # ServerSelectionTimeoutError
        with pytest.raises(AutoReconnect):
            await writer.insert({"_id": "c"})  # the next batch tries again (and fails again, alone)
    finally:
        await client.close()
