"""Group commits: callers each await their own write while one task sends everything that came in
meanwhile together, then answers each of them. Idle, a write goes at once; under load, the writes of many
concurrent handlers share a round trip. The gateway's projector and billing's ledger fold their groups
themselves; `BulkWriter` is the plain case (the dispatcher's records)."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import InsertOne, UpdateOne
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


class BulkWriter:
    """Inserts and updates of one collection from concurrent callers, sent as one unordered `bulk_write`
    per batch. Each caller gets the outcome of its own write, as if it had sent it alone: `insert` says
    whether it inserted (False: a document with that `_id` exists), `update` returns once written (how
    many it matched is not reported per write), and any other write error, or an error of the whole
    batch (MongoDB away), is raised to the callers it concerns. Writes of one caller go in the order it
    awaits them; writes of different callers in one batch may be applied in any order."""

    def __init__(self, collection: AsyncCollection) -> None:
        self.collection = collection
        self._waiting: list[tuple[InsertOne[Any] | UpdateOne, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def insert(self, doc: dict[str, Any]) -> bool:
        return bool(await self._send(InsertOne(doc)))

    async def update(self, filter: dict[str, Any], update: dict[str, Any]) -> None:
        await self._send(UpdateOne(filter, update))

    async def _send(self, op: InsertOne[Any] | UpdateOne) -> Any:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((op, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_all(), name=f"bulk-{self.collection.name}")
        return await done

    async def _write_all(self) -> None:
        batch: list[tuple[InsertOne[Any] | UpdateOne, asyncio.Future[Any]]] = []
        try:
            await asyncio.sleep(0)  # let the other handlers of the same fetch add their writes first
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                try:
                    await self.collection.bulk_write([op for op, _ in batch], ordered=False)
                    errors: dict[int, dict[str, Any]] = {}
                except BulkWriteError as exc:  # `index`: the write's place in the batch
                    errors = {e["index"]: e for e in exc.details.get("writeErrors", [])}
                except Exception as exc:  # noqa: BLE001 - the whole batch failed: so did each write
                    for _, done in batch:
                        settle(done, error=exc)
                    continue
                for i, (op, done) in enumerate(batch):
                    error = errors.get(i)
                    if error is None:
                        settle(done, True)
                    elif error.get("code") == DUPLICATE_KEY and isinstance(op, InsertOne):
                        settle(done, False)
                    else:
                        settle(done, error=WriteError(error.get("errmsg", ""), error.get("code"), error))
        except BaseException as exc:  # cancelled (shutting down): nobody waits for an answer never coming
            for _, done in (*batch, *self._waiting):
                settle(done, error=exc)
            self._waiting.clear()
            raise
