"""The generation read model, kept from the events.

`apply_event` is pure: it folds one event into a document and tolerates any order and any repeat
(events already applied are recognised by id; a status never moves backwards). Only `requested`
creates a generation, and only the first one counts: any other event for a generation the read model
has never seen raises `UnknownGeneration` (the consumer retries it, in case its `requested` is a moment
behind, then dead-letters it), so no event can make a generation appear. `Projector` stores the result
with optimistic concurrency on `version`, so concurrent replicas never lose an update, and writes the
events that arrive together in one round trip (a group commit).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import datetime
from typing import Any

from pixsim_contracts import (
    TERMINAL_GENERATION_EVENTS,
    CreditEvent,
    CreditsCharged,
    CreditsReleased,
    CreditsReserved,
    Event,
    GenerationCancelled,
    GenerationCancelRequested,
    GenerationCompleted,
    GenerationFailed,
    GenerationFiltered,
    GenerationProgressed,
    GenerationRequested,
    GenerationSubmitted,
)
from pixsim_runtime.group_commit import INSERT, UPDATE, Write, settle, write_batch
from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import WriteError

GENERATIONS = "generations"

STATUS_RANK = {
    "requested": 0,
    "submitted": 1,
    "processing": 2,
    **dict.fromkeys(TERMINAL_GENERATION_EVENTS, 3),
}


class UnknownGeneration(Exception):
    """An event for a generation whose `requested` event the read model has not seen."""


def new_document(generation_id: str, at: datetime) -> dict[str, Any]:
    return {
        "_id": generation_id,
        "provider_id": None,
        "operation_type": None,
        "params": {},
        "status": "requested",
        "progress": 0.0,
        "provider_job_id": None,
        "account_id": None,
        "user_id": None,
        "priority": 0,
        "result": None,
        "error": None,
        "cancel_requested": False,
        "credits": {"reserved": {}, "charged": {}, "released": {}},
        "created_at": at,
        "updated_at": at,
        "version": 0,
        "applied": [],
    }


def _advance(doc: dict[str, Any], status: str) -> bool:
    if STATUS_RANK[status] > STATUS_RANK[doc["status"]]:
        doc["status"] = status
        return True
    return False


def apply_event(doc: dict[str, Any] | None, event: Event) -> dict[str, Any] | None:
    """The document after `event`, or None when the event changes nothing (applied before, or a second
    `requested` for an existing generation). Raises `UnknownGeneration` for any other event when `doc`
    is None."""
    gid = event.generation_id  # type: ignore[attr-defined]
    if doc is None:
        if not isinstance(event, GenerationRequested):
            raise UnknownGeneration(
                f"no generation {gid!r}: its `requested` event was never seen ({event.type})"
            )
        doc = new_document(gid, event.occurred_at)
    elif event.event_id in doc["applied"] or isinstance(event, GenerationRequested):
        return None  # a repeat, or another request under an id already taken: the first one stands
    else:  # a copy: the caller's document (maybe the projector's cached one) stays as it was
        doc = {
            **doc,
            "credits": {k: dict(v) for k, v in doc["credits"].items()},
            "applied": list(doc["applied"]),
        }
    match event:
        case GenerationRequested():
            doc.update(
                provider_id=event.provider_id,
                operation_type=event.operation_type.value,
                params=event.params,
                account_id=doc["account_id"] or event.account_id,
                user_id=event.user_id,
                priority=event.priority,
            )
            doc["created_at"] = min(doc["created_at"], event.occurred_at)
        case GenerationSubmitted():
            doc.update(
                provider_id=event.provider_id,
                provider_job_id=event.provider_job_id,
                account_id=event.account_id,
            )
            _advance(doc, "submitted")
        case GenerationProgressed():
            doc["progress"] = max(doc["progress"], event.progress)
            _advance(doc, "processing")
        case GenerationCompleted():
            if _advance(doc, "completed"):
                doc.update(result=event.result, progress=1.0, account_id=event.account_id)
        case GenerationFailed() | GenerationFiltered():
            if _advance(doc, "failed" if isinstance(event, GenerationFailed) else "filtered"):
                doc["error"] = event.error.model_dump()
        case GenerationCancelRequested():
            doc["cancel_requested"] = True
        case GenerationCancelled():
            _advance(doc, "cancelled")
        case CreditsReserved():
            doc["credits"]["reserved"][event.credit_type] = event.amount
        case CreditsCharged():
            doc["credits"]["charged"][event.credit_type] = event.amount
        case CreditsReleased():
            doc["credits"]["released"][event.credit_type] = event.amount
        case _:
            return None
    doc["applied"].append(event.event_id)
    doc["updated_at"] = max(doc["updated_at"], event.occurred_at)
    return doc


def to_api(doc: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a generation (no bookkeeping fields)."""
    hidden = {"_id", "applied", "version"}
    return {"id": doc["_id"], **{k: v for k, v in doc.items() if k not in hidden}}


class Projector:
    """Folds events into the stored read model, with optimistic concurrency on `version` and a group
    commit: one writer task stores every event that came in while its last write was out, in ONE
    `bulk_write` (the events of one generation folded into one document, an insert for a new generation
    and a version-guarded replace for the others). Idle, an event is written at once; under load, the
    events of many generations share a round trip. A cache of the documents stored (or read) last saves
    the read before a write; a stale one (another replica wrote since) costs a re-read. One projector
    serves every consumer of the process (and the API's own writes), so the process never races itself.

    Nothing is read to answer a repeat: a cached document that lists the event as applied proves the
    store has it too (a stored document's `applied` only grows)."""

    def __init__(self, db: AsyncDatabase, cache_size: int = 10_000) -> None:
        self.collection = db[GENERATIONS]
        self.cache_size = cache_size
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._waiting: dict[str, list[_Waiter]] = {}
        self._writer: asyncio.Task[None] | None = None

    async def apply(self, event: Event | CreditEvent) -> dict[str, Any] | None:
        """Fold the event into its generation; returns the stored document that has the event (maybe with
        events folded in the same write, or, for a repeat, the cached one), or None when the event
        changed nothing and is not in it (a second `requested` under an id already taken). Raises
        `UnknownGeneration` for an event of a generation never requested."""
        gid = event.generation_id  # type: ignore[attr-defined]
        if gid is None:  # account-level credit events (grants, syncs) belong to no generation
            return None
        done: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(gid, []).append((event, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="projector-writer")
        return await done

    def cached(self, generation_id: str) -> dict[str, Any] | None:
        """The document this process stored (or read) last for the generation, if it still has it."""
        return self._recent.get(generation_id)

    async def _write_all(self) -> None:
        await asyncio.sleep(0)  # let the other handlers of the same fetch add their events first
        while self._waiting:
            batch, self._waiting = self._waiting, {}
            try:
                await self._store(batch)
            except BaseException as exc:  # the write's outcome is unknown: read again next time
                for gid, waiters in batch.items():
                    self._recent.pop(gid, None)
                    for _, done in waiters:
                        settle(done, error=exc)
                if not isinstance(exc, Exception):
                    raise

    async def _store(self, batch: dict[str, list[_Waiter]]) -> None:
        """Fold and write `batch` until every event in it is stored (or known to change nothing)."""
        # A `requested` the cache does not know is most likely a new generation: insert it straight away
        # (a DuplicateKeyError says it exists after all, and then it is read).
        unread = [
            gid
            for gid, waiters in batch.items()
            if gid not in self._recent and not isinstance(waiters[0][0], GenerationRequested)
        ]
        while batch:
            if unread:
                for doc in await self.collection.find({"_id": {"$in": unread}}).to_list():
                    self._remember(doc)
            written = self._fold(batch)
            if not written:
                return
            uncertain = await self._write(written)
            for gid, doc in written.items():
                if gid not in uncertain:
                    self._remember(doc)
                    for _, done in batch.pop(gid):
                        settle(done, doc)
            # Another writer came first (another replica, or a stale cache): read those generations
            # again; an event the stored document has is done, the others are folded again on top of it.
            for gid in uncertain:
                self._recent.pop(gid, None)
            unread = list(uncertain)

    def _fold(self, batch: dict[str, list[_Waiter]]) -> dict[str, dict[str, Any]]:
        """The document each generation of `batch` should now have; events that change nothing (or
        belong to no known generation) are answered at once and leave the batch."""
        written: dict[str, dict[str, Any]] = {}
        for gid in list(batch):
            current = self._recent.get(gid)
            doc, left = current, []
            for event, done in batch[gid]:
                try:
                    updated = apply_event(doc, event)
                except UnknownGeneration as exc:
                    settle(done, error=exc)
                    continue
                if updated is None:  # applied before (maybe by us, in a write that looked uncertain)
                    settle(done, doc if doc is not None and event.event_id in doc["applied"] else None)
                    continue
                doc = updated
                left.append((event, done))
            if doc is current or not left:
                del batch[gid]
                continue
            batch[gid] = left
            doc["version"] = (current["version"] if current else 0) + 1
            written[gid] = doc
        return written

    async def _write(self, written: dict[str, dict[str, Any]]) -> set[str]:
        """One `bulk_write` of the documents; returns the generations it may not have written (a
        replace whose version moved, an insert of a generation that exists)."""
        writes: list[Write] = [
            (InsertOne(doc), INSERT)
            if doc["version"] == 1
            else (ReplaceOne({"_id": gid, "version": doc["version"] - 1}, doc), UPDATE)
            for gid, doc in written.items()
        ]
        outcomes = await write_batch(self.collection, writes)
        for outcome in outcomes:
            if isinstance(outcome, WriteError):
                raise outcome
        return {gid for gid, stored in zip(written, outcomes, strict=True) if not stored}

    def _remember(self, doc: dict[str, Any]) -> dict[str, Any]:
        self._recent[doc["_id"]] = doc
        self._recent.move_to_end(doc["_id"])
        while len(self._recent) > self.cache_size:
            self._recent.popitem(last=False)
        return doc


#: An event waiting to be stored, and its caller's future.
_Waiter = tuple[Event | CreditEvent, "asyncio.Future[dict[str, Any] | None]"]
