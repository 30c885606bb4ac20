"""Group commits: callers each await their own write while one task sends everything that came in
meanwhile together, then answers each of them. Idle, a write goes at once; under load, the writes of many
concurrent handlers share a round trip. The gateway's projector and billing's ledger fold their groups
themselves (the projector sends them with `write_batch`); `BulkWriter` is the plain case (the
dispatcher's records, the poller's schedule, the archiver's records). `SharedReads` does the same for
reads by `_id` (the gateway's API keys)."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, WriteError

DUPLICATE_KEY = 11000
#: The most writes one `bulk_write` carries.
MAX_BATCH = 500


def settle(done: asyncio.Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Answer a waiting caller: its result, or its error (a cancellation cancels it); nothing when it
    has its answer already or gave up waiting (cancelled)."""
    if done.done():
        return
    if isinstance(error, Exception):
        done.set_exception(error)
    elif error is not None:
        done.cancel()
    else:
        done.set_result(result)


INSERT, UPSERT, UPDATE = "insert", "upsert", "update"
#: A write and its kind: `InsertOne` is an INSERT, an `UpdateOne` with upsert an UPSERT, any other
#: `UpdateOne` or a `ReplaceOne` an UPDATE.
Write = tuple[InsertOne[Any] | UpdateOne | ReplaceOne[Any], str]


async def write_batch(collection: AsyncCollection, writes: list[Write]) -> list[bool | WriteError]:
    """Send `writes` as one unordered `bulk_write`; each one's outcome, as far as MongoDB reports it per
    write: an INSERT whether it inserted (False: that `_id` exists), an UPSERT whether it inserted (False:
    it updated a document, or missed one whose `_id` exists), an UPDATE True when it surely matched (every
    update of the batch did; MongoDB does not say which one missed). Any other refusal is that write's
    `WriteError`; a failure of the whole batch (MongoDB away) is raised."""
    try:
        result = await collection.bulk_write([op for op, _ in writes], ordered=False)
        errors: dict[int, dict[str, Any]] = {}
        matched, upserted = result.matched_count, set(result.upserted_ids or {})
    except BulkWriteError as exc:  # `index`: the write's place in the batch
        errors = {e["index"]: e for e in exc.details.get("writeErrors", [])}
        matched = exc.details.get("nMatched", 0)
        upserted = {u["index"] for u in exc.details.get("upserted", [])}
    # `nMatched` counts the updates and upserts that found their document
    updates = sum(
        1 for i, (_, kind) in enumerate(writes) if kind != INSERT and i not in errors and i not in upserted
    )
    all_matched = matched >= updates
    outcomes: list[bool | WriteError] = []
    for i, (_, kind) in enumerate(writes):
        error = errors.get(i)
        if error is None:
            outcomes.append({INSERT: True, UPSERT: i in upserted, UPDATE: all_matched}[kind])
        elif error.get("code") == DUPLICATE_KEY and kind != UPDATE:
            outcomes.append(False)
        else:
            outcomes.append(WriteError(error.get("errmsg", ""), error.get("code"), error))
    return outcomes


class BulkWriter:
    """Inserts and updates of one collection from concurrent callers, sent as one unordered `bulk_write`
    per batch. Each caller gets the outcome of its own write, as if it had sent it alone, as far as MongoDB
    reports it per write:
    `insert`, `upsert`, `update` and `replace` answer as `write_batch` says (an `update` or `replace`
    answered False may have matched: a caller to whom it matters reads the document back). Any other
    write error, or an error of the whole batch (MongoDB away), is raised to the callers it concerns.
    Writes of one caller go in the order it awaits them; writes of different callers in one batch may be
    applied in any order."""

    def __init__(self, collection: AsyncCollection) -> None:
        self.collection = collection
        self._waiting: list[tuple[Write, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def insert(self, doc: dict[str, Any]) -> bool:
        return bool(await self._send(InsertOne(doc), INSERT))

    async def upsert(self, filter: dict[str, Any], update: dict[str, Any]) -> bool:
        return bool(await self._send(UpdateOne(filter, update, upsert=True), UPSERT))

    async def update(self, filter: dict[str, Any], update: dict[str, Any]) -> bool:
        return bool(await self._send(UpdateOne(filter, update), UPDATE))

    async def replace(self, filter: dict[str, Any], doc: dict[str, Any]) -> bool:
        return bool(await self._send(ReplaceOne(filter, doc), UPDATE))

    async def _send(self, op: InsertOne[Any] | UpdateOne | ReplaceOne[Any], kind: str) -> Any:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(((op, kind), done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_all(), name=f"bulk-{self.collection.name}")
        return await done

    async def _write_all(self) -> None:
        batch: list[tuple[Write, asyncio.Future[Any]]] = []
        try:
            await asyncio.sleep(0)  # let the other handlers of the same fetch add their writes first
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                try:
                    outcomes = await write_batch(self.collection, [write for write, _ in batch])
                except Exception as exc:  # noqa: BLE001 - the whole batch failed: so did each write
                    for _, done in batch:
                        settle(done, error=exc)
                    continue
                for (_, done), outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, WriteError):
                        settle(done, error=outcome)
                    else:
                        settle(done, outcome)
        except BaseException as exc:  # cancelled (shutting down): nobody waits for an answer never coming
            for _, done in (*batch, *self._waiting):
                settle(done, error=exc)
            self._waiting.clear()
            raise


class SharedReads:
    """Reads of documents by `_id` from concurrent callers, sent as one `find` per batch.

    Each caller is answered by a read *sent after it asked*, never by one already out: its answer is as
    fresh as a read of its own (an API key revoked before a request came refuses that request, on every
    replica). Only the callers that ask while a read is out wait for the next one together, so a burst
    of requests with one key costs two reads, not one each. Callers get their own shallow copy."""

    def __init__(self, collection: AsyncCollection) -> None:
        self.collection = collection
        self._waiting: dict[Any, list[asyncio.Future[Any]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, _id: Any) -> dict[str, Any] | None:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(_id, []).append(done)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read_all(), name=f"reads-{self.collection.name}")
        doc = await done
        return None if doc is None else dict(doc)

    async def _read_all(self) -> None:
        batch: dict[Any, list[asyncio.Future[Any]]] = {}
        try:
            await asyncio.sleep(0)  # let the other requests of the same moment ask first
            while self._waiting:
                ids = list(self._waiting)[:MAX_BATCH]
                batch = {i: self._waiting.pop(i) for i in ids}
                try:
                    query = {"_id": ids[0]} if len(ids) == 1 else {"_id": {"$in": ids}}
                    found = {doc["_id"]: doc for doc in await self.collection.find(query).to_list()}
                except Exception as exc:  # noqa: BLE001 - the read failed: so did each caller's
                    for waiters in batch.values():
                        for done in waiters:
                            settle(done, error=exc)
                    continue
                for i, waiters in batch.items():
                    for done in waiters:
                        settle(done, found.get(i))
        except BaseException as exc:  # cancelled (shutting down): nobody waits for an answer never coming
            for waiters in (*batch.values(), *self._waiting.values()):
                for done in waiters:
                    settle(done, error=exc)
            self._waiting.clear()
            raise
