"""`BulkWriter`: concurrent writers share one `bulk_write`, and each gets the outcome of its own write.
`SharedReads`: concurrent readers share one `find`, and each gets a read sent after it asked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from pixsim_runtime.group_commit import BulkWriter, SharedReads
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

    commands.sent.clear()
    replaced = await asyncio.gather(
        writer.replace({"_id": "u0"}, {"n": 7, "whole": True}), writer.replace({"_id": "u1"}, {"n": 8})
    )
    assert replaced == [True, True] and commands.sent == ["update records"]
    assert await records.find_one({"_id": "u0"}) == {"_id": "u0", "n": 7, "whole": True}


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


async def test_concurrent_reads_share_a_find_and_each_gets_its_own_copy(counted) -> None:
    records, _, commands = counted
    await records.insert_many([{"_id": f"k{i}", "owner": f"u{i}", "limits": {}} for i in range(5)])
    reads = SharedReads(records)
    commands.sent.clear()
    asked = [f"k{i % 6}" for i in range(60)]  # k5 does not exist
    found = await asyncio.gather(*(reads.get(i) for i in asked))
    assert commands.sent == ["find records"]
    assert [d and d["owner"] for d in found] == [None if i == "k5" else f"u{i[1:]}" for i in asked]
    found[0]["owner"] = "changed"  # a caller's copy is its own
    assert found[6]["owner"] == "u0"
    assert (await reads.get("k1"))["owner"] == "u1"  # idle: a read of its own, at once
    assert commands.sent == ["find records", "find records"]


class HeldAnswers:
    """The real collection, but a `find`'s answer is held at a gate after MongoDB gave it: a read that is
    out while the test changes the document."""

    def __init__(self, collection: AsyncCollection) -> None:
        self.collection, self.name = collection, collection.name
        self.answered, self.gate = asyncio.Event(), asyncio.Event()

    def find(self, *args, **kwargs):
        cursor, held = self.collection.find(*args, **kwargs), self

        class Cursor:
            async def to_list(self):
                docs = await cursor.to_list()
                held.answered.set()
                await held.gate.wait()
                return docs

        return Cursor()


async def test_a_read_already_out_never_answers_a_caller_who_asked_after_it_was_sent(counted) -> None:
    """A key revoked while a read of it is out: the requests that came before the revocation may pass
    (they raced it), a request that comes after it is refused, as if it had read alone."""
    records, _, _ = counted
    await records.insert_one({"_id": "key", "revoked_at": None})
    held = HeldAnswers(records)
    reads = SharedReads(held)  # type: ignore[arg-type]
    before = asyncio.create_task(reads.get("key"))
    await asyncio.wait_for(held.answered.wait(), 10)  # its read has its answer, held
    await records.update_one({"_id": "key"}, {"$set": {"revoked_at": 1.0}})
    after = asyncio.create_task(reads.get("key"))
    await asyncio.sleep(0.05)
    assert not after.done()  # it waits for a read of its own
    held.gate.set()
    assert (await before)["revoked_at"] is None
    assert (await after)["revoked_at"] == 1.0
