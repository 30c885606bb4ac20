"""The generation read model, kept from the events.

`apply_event` is pure: it folds one event into a document and tolerates any order and any repeat
(events already applied are recognised by id; a status never moves backwards). Only `requested`
creates a generation, and only the first one counts: any other event for a generation the read model
has never seen raises `UnknownGeneration` (the consumer retries it, in case its `requested` is a moment
behind, then dead-letters it), so no event can make a generation appear. `Projector` stores the result
with optimistic concurrency on `version`, so concurrent replicas never lose an update.
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
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

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
    """Folds events into the stored read model: optimistic concurrency on `version`, and a cache of the
    documents it stored (or read) last, so the usual event costs one round trip: the guarded replace, or
    for a new generation the insert. A stale cache entry (another replica wrote since) only costs a
    re-read. One projector serves every consumer of the process (and the API's own writes): events of one
    generation are folded one at a time, so the process's consumers never race each other's writes.

    Nothing is read to answer a repeat: a cached document that lists the event as applied proves the
    store has it too (a stored document's `applied` only grows)."""

    def __init__(self, db: AsyncDatabase, cache_size: int = 10_000) -> None:
        self.collection = db[GENERATIONS]
        self.cache_size = cache_size
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._turns: dict[str, _Turn] = {}

    async def apply(self, event: Event | CreditEvent) -> dict[str, Any] | None:
        """Fold the event into its generation; returns the stored document, or None when the event
        changed nothing (applied before, or a second `requested`)."""
        gid = event.generation_id  # type: ignore[attr-defined]
        if gid is None:  # account-level credit events (grants, syncs) belong to no generation
            return None
        turn = self._turns.setdefault(gid, _Turn())
        turn.waiting += 1
        try:
            async with turn.lock:
                return await self._apply(gid, event)
        finally:
            turn.waiting -= 1
            if not turn.waiting:
                del self._turns[gid]

    async def _apply(self, gid: str, event: Event | CreditEvent) -> dict[str, Any] | None:
        current = self._recent.get(gid)
        # A `requested` the cache does not know is most likely a new generation: insert it straight away
        # (a DuplicateKeyError says it exists after all, and then it is read).
        read = current is None and not isinstance(event, GenerationRequested)
        while True:
            if read:
                current = await self.collection.find_one({"_id": gid})
                if current is not None:
                    self._remember(current)
            read = True
            updated = apply_event(current, event)
            if updated is None:
                return None
            if current is None:
                updated["version"] = 1
                try:
                    await self.collection.insert_one(updated)
                    return self._remember(updated)
                except DuplicateKeyError:
                    continue  # another writer created it first: fold again on top of theirs
            updated["version"] = current["version"] + 1
            result = await self.collection.replace_one({"_id": gid, "version": current["version"]}, updated)
            if result.matched_count:
                return self._remember(updated)
            # someone else (another replica) wrote it since: read it again

    def cached(self, generation_id: str) -> dict[str, Any] | None:
        """The document this process stored (or read) last for the generation, if it still has it."""
        return self._recent.get(generation_id)

    def _remember(self, doc: dict[str, Any]) -> dict[str, Any]:
        self._recent[doc["_id"]] = doc
        self._recent.move_to_end(doc["_id"])
        while len(self._recent) > self.cache_size:
            self._recent.popitem(last=False)
        return doc


class _Turn:
    """The events of one generation waiting to be folded, one at a time."""

    __slots__ = ("lock", "waiting")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.waiting = 0
