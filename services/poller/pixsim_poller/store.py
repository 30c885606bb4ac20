"""The `polls` collection: one document per submitted job (`_id` = the generation id) holding its poll
schedule, its lease, and what polling has announced so far. The only module that writes it.

Fields: `job` (the `generation.submitted` event, as JSON), `provider_id`, `trace` (the submit's trace
context), `started_at`, `expected_s` and `estimate` (`hook` or `learned`), `duration_key`;
`next_poll_at`, `ends_from` (when it is next due as an end poll, claimed first: its next poll or its
expected end, whichever is later); the lease `lease_until` / `holder` / `lease_id`; `polls` (claims so far), `last_poll_at`
(seconds after submit); `progress` (the highest announced), `seen_progress` / `seen_at` (the last
reported, for the ETA); `bad_polls`; `failures` (polls that could not finish: NATS or MongoDB away, a bug); `cancel_requested`; at the end `outbox` (the final events, kept
until published) and `ended_at`; `added_by` (which `add` scheduled the job: see there).

A job being polled has `next_poll_at` = its lease's end, so "due" and "lease expired" are one condition,
and the index (`provider_id`, `next_poll_at`) serves both the claim and the look-ahead of an idle
replica. Claims come a few at a time (`claim_some`): one sorted query for the earliest due jobs of one
provider, and one update by `_id` of those still due that takes their leases (a read of what it took only
when another replica took some first);
the write-back after a poll is one more, conditional on the lease, so a replica that lost its lease
never overwrites the next holder's. Schedulings (`add`) and kept outcomes (`record_outcome`) made at the
same moment share one `bulk_write` (`pixsim_runtime.group_commit`). A finished job has no `next_poll_at`: it leaves the index (closed a
moment after its events are out, in batches: `pixsim_poller.write_behind`).

Times are epoch seconds (floats), as in `pixsim_runtime.accounts`: numbers compare and index alike on
every server, while nx-27017 (the tests' wire server) neither matches datetimes with `$lte` nor keeps a
`$set` datetime a datetime.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from pixsim_runtime.group_commit import BulkWriter
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

POLLS = "polls"
_FREE = {"lease_until": 0.0, "holder": "", "lease_id": ""}


@dataclass(frozen=True)
class Partition:
    """What one claim draws from: one provider's jobs, or (`others`) those of providers this replica
    does not know (they are failed as `provider_not_found`, as before)."""

    name: str
    match: dict[str, Any]


def partitions(provider_ids: list[str]) -> list[Partition]:
    return [
        *(Partition(p, {"provider_id": p}) for p in provider_ids),
        Partition("(others)", {"provider_id": {"$nin": list(provider_ids)}}),
    ]


class PollStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.polls: AsyncCollection = db[POLLS]
        self.writes = BulkWriter(self.polls)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def create_indexes(self) -> None:
        await self.polls.create_index([("provider_id", ASCENDING), ("next_poll_at", ASCENDING)])
        # Also `next_poll_at` alone, for the wire server the tests and `make run` use: nx-27017 turns an
        # equality into "equal, or an array containing it", which no index serves, so without this index
        # every claim scanned and sorted the whole schedule (35-75 ms at 20,000 jobs, 94 % of its time in
        # the 20,000-job bench); with it, 0.2-3 ms. Real MongoDB's planner picks the compound index.
        await self.polls.create_index([("next_poll_at", ASCENDING)])
        # End polls are claimed in `ends_from` order (see `claim_some`). With this index an end claim at
        # 20,000 jobs takes 2.4 ms on nx-27017 (8.6 ms in `next_poll_at` order, 31 ms unindexed).
        await self.polls.create_index([("ends_from", ASCENDING)])

    # -- scheduling -------------------------------------------------------------------------------
    async def add(self, gid: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Schedule a submitted job; None when it already is (a redelivery). A document that a cancel
        created first is completed, keeping its `cancel_requested`: returned so the caller sees it."""
        token = uuid.uuid4().hex
        if await self.writes.upsert(
            {"_id": gid, "job": {"$exists": False}}, {"$set": {**fields, **_FREE, "added_by": token}}
        ):
            return {}  # a new document: no cancel came before it
        # It completed a document a cancel created, or the job was scheduled already (MongoDB refuses the
        # upsert as a duplicate key; nx-27017 does nothing): in a batch only a read tells which.
        doc = await self.polls.find_one({"_id": gid}, {"cancel_requested": 1, "added_by": 1})
        return doc if doc is not None and doc.get("added_by") == token else None

    async def request_cancel(self, gid: str, now: float) -> str | None:
        """Flag the job; if it is waiting (not leased) for a later poll, make it due now and return its
        provider's id."""
        made_due = await self.polls.find_one_and_update(
            {"_id": gid, "lease_until": {"$lte": now}, "next_poll_at": {"$gt": now}},
            {"$set": {"cancel_requested": True, "next_poll_at": now, "ends_from": now}},
            projection={"provider_id": 1},
        )
        if made_due is not None:
            return str(made_due.get("provider_id") or "")
        # leased (its write-back sees the flag), due already, or not submitted yet
        await self.polls.update_one({"_id": gid}, {"$set": {"cancel_requested": True}}, upsert=True)
        return None

    async def make_due(self, gid: str, now: float) -> None:
        await self.polls.update_one(
            {"_id": gid, "lease_until": {"$lte": now}}, {"$set": {"next_poll_at": now, "ends_from": now}}
        )

    # -- claims and leases ------------------------------------------------------------------------
    async def claim_some(
        self, part: Partition, now: float, lease_s: float, limit: int, *, ends_only: bool = False
    ) -> list[dict[str, Any]]:
        """Lease up to `limit` of the partition's earliest due jobs (`ends_only`: only end polls, those
        past their `ends_from`) in two round trips however many: one sorted query for them, and one update
        of those still due (each document's update is atomic, so a job another replica took in between is
        skipped). Only when the update took fewer than it read (another replica was quicker) does a third
        read, by `_id` and this claim's lease id, tell which ones are this claim's. Keyed operations stay
        fast however many jobs wait (nx-27017 slows down on other filters as the collection grows), and a
        batch costs no more round trips than one job."""
        query: dict[str, Any] = {**part.match, "next_poll_at": {"$lte": now}}
        if ends_only:
            query["ends_from"] = {"$lte": now}
        # End polls in the order they became end polls. Not by `next_poll_at`: a long job whose progress
        # polls were starved keeps the `next_poll_at` of its first, never made, progress poll, so in that
        # order every such job would go before one whose progress was polled lately, and while end polls
        # are claimed as fast as they fall due, that one would wait (200 s late at 20,000 jobs).
        order = "ends_from" if ends_only else "next_poll_at"
        due = await self.polls.find(query, sort=[(order, ASCENDING)], limit=limit).to_list()
        if not due:
            return []
        ids = [doc["_id"] for doc in due]
        lease: dict[str, Any] = {
            "next_poll_at": now + lease_s,
            "lease_until": now + lease_s,
            "holder": self.holder,
            "lease_id": uuid.uuid4().hex,  # unique per job too: a lease is (`_id`, `lease_id`)
        }
        took = await self.polls.update_many(
            {"_id": {"$in": ids}, "next_poll_at": {"$lte": now}}, {"$set": lease, "$inc": {"polls": 1}}
        )
        if took.matched_count == len(ids):  # all of them: what was read, with the lease taken
            return [{**doc, **lease, "polls": int(doc.get("polls") or 0) + 1} for doc in due]
        claimed = await self.polls.find({"_id": {"$in": ids}, "lease_id": lease["lease_id"]}).to_list()
        order = {gid: i for i, gid in enumerate(ids)}
        return sorted(claimed, key=lambda doc: order[doc["_id"]])

    async def earliest(self, part: Partition) -> float | None:
        """When the partition's next job is due (None: it has none)."""
        doc = await self.polls.find_one(
            {**part.match, "next_poll_at": {"$gte": 0}},
            {"next_poll_at": 1},
            sort=[("next_poll_at", ASCENDING)],
        )
        return None if doc is None else float(doc["next_poll_at"])

    async def renew(self, record: dict[str, Any], until: float) -> bool:
        done = await self.polls.update_one(
            _held(record), {"$set": {"next_poll_at": until, "lease_until": until}}
        )
        return bool(done.matched_count)

    async def release(self, record: dict[str, Any], at: float, *, failed: bool = False) -> None:
        """Give the job back, due at `at`: a replica shutting down, or (`failed`) a poll that could not
        finish, counted in `failures` until a poll succeeds again."""
        update: dict[str, Any] = {"$set": {"next_poll_at": at, **_FREE}}
        if failed:
            update["$inc"] = {"failures": 1}
        await self.polls.update_one(_held(record), update)

    async def reschedule(
        self, record: dict[str, Any], at: float, fields: dict[str, Any]
    ) -> dict[str, Any] | None:
        """After a poll: the next one at `at`, the lease given back. The document's `cancel_requested`
        (a cancel may have come meanwhile), or None when the lease was lost to another replica."""
        return await self.polls.find_one_and_update(
            _held(record),
            {"$set": {**fields, "next_poll_at": at, "failures": 0, **_FREE}},
            projection={"cancel_requested": 1},
            return_document=ReturnDocument.AFTER,
        )

    async def record_outcome(
        self, record: dict[str, Any], outbox: list[str], fields: dict[str, Any], now: float
    ) -> bool:
        """Keep the final events before publishing them. The job stays leased meanwhile, so if this
        replica dies before `close`, another publishes the same events after the lease. False when the
        lease was lost to another replica."""
        unended = {**_held(record), "outbox": {"$exists": False}}
        if await self.writes.update(unended, {"$set": {**fields, "outbox": outbox, "ended_at": now}}):
            return True
        # Some write of its batch matched nothing: this one's was kept if the job, still under this
        # lease, has an outbox (only this poll writes one under it).
        return (
            await self.polls.find_one({**_held(record), "outbox": {"$exists": True}}, {"_id": 1}) is not None
        )

    async def close_many(self, ids: list[str]) -> None:
        """The final events of these jobs are out: they leave the schedule. Whoever holds them now: a job
        with an outbox has ended, and its events are the same whoever publishes them."""
        await self.polls.update_many(
            {"_id": {"$in": ids}, "outbox": {"$exists": True}},
            {"$unset": {"next_poll_at": "", **dict.fromkeys(_FREE, "")}},
        )


def _held(record: dict[str, Any]) -> dict[str, Any]:
    return {"_id": record["_id"], "lease_id": record["lease_id"]}
