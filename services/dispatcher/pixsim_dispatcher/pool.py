"""Concurrency slots as leases on the account document, with the credit hold of the job riding on them.

A lease is `leases.<generation_id>` on the account: `{token, holder, acquired_at, expires_at, credits,
settled}`. Taking one is ONE conditional update of the account: the filter repeats everything the
choice was based on (status active, enabled, the concurrency limit read, `slots_used` below it, no
lease for this job yet, `available.<type> >= estimate` for every tracked credit type), and the update
adds the lease, bumps `slots_used` and takes the estimate off `available`. Two dispatcher replicas
racing for the last slot: one update matches, the other matches nothing and looks elsewhere.

A lease ends in one of three ways, each a single update guarded by the lease's token (so it happens once):
- the job never reached the provider: `release(return_credits=True)` gives the slot and the hold back;
- the job was submitted: `settle_by_billing` marks it; billing gives the hold back when it books the
  charge or release, and the slot comes back on the job's terminal event (`release()`);
- its holder died: once `expires_at` has passed, the next look at the account reclaims it, giving the
  credits back only if the job was never submitted (the dispatch record says).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from faststream.nats import NatsBroker
from pixsim_contracts import ProviderManifest, new_id
from pixsim_runtime.accounts import ACCOUNTS, may_run_jobs_of, set_status
from pymongo.asynchronous.database import AsyncDatabase

from .selection import Verdict, assess, cooldown_over, rank

RACE_PASSES = 3


@dataclass(frozen=True)
class Lease:
    account_id: str
    generation_id: str
    token: str
    credits: dict[str, int]

    def ref(self) -> dict[str, Any]:
        """What the dispatch record keeps of it."""
        return {"account_id": self.account_id, "token": self.token, "credits": self.credits}

    @classmethod
    def from_ref(cls, generation_id: str, ref: dict[str, Any]) -> Lease:
        return cls(ref["account_id"], generation_id, ref["token"], dict(ref.get("credits") or {}))


@dataclass(frozen=True)
class Acquired:
    doc: dict[str, Any]
    lease: Lease


@dataclass(frozen=True)
class Wait:
    reason: str
    until: datetime | None = None


@dataclass(frozen=True)
class Unavailable:
    code: str
    message: str


class AccountPool:
    def __init__(
        self,
        db: AsyncDatabase,
        broker: NatsBroker,
        *,
        holder: str,
        lease_ttl_s: float,
        is_submitted: Callable[[str], Awaitable[bool]],
    ) -> None:
        self.db = db
        self.broker = broker
        self.accounts = db[ACCOUNTS]
        self.holder = holder
        self.lease_ttl = timedelta(seconds=lease_ttl_s)
        self.is_submitted = is_submitted

    async def acquire(
        self,
        manifest: ProviderManifest,
        generation_id: str,
        estimate: dict[str, int],
        pinned: str | None,
        now: datetime,
        user_id: str | None,
    ) -> Acquired | Wait | Unavailable:
        """A lease on the best eligible account, or why there is none (worth waiting for, or not).
        Only accounts that may run this user's jobs are considered: the user's own, and shared ones;
        another user's pinned account looks exactly like a missing one."""
        query = {"provider_id": manifest.id} if pinned is None else {"_id": pinned}
        for _ in range(RACE_PASSES):
            docs = [doc for doc in await self.accounts.find(query).to_list() if may_run_jobs_of(doc, user_id)]
            if pinned is not None and (not docs or docs[0].get("provider_id") != manifest.id):
                return Unavailable(
                    "pinned_account_unavailable",
                    f"account {pinned!r} does not exist for provider {manifest.id!r}",
                )
            for doc in docs:  # a lease this job already holds (a delivery that died before noting it)
                held = (doc.get("leases") or {}).get(generation_id)
                if held:
                    return Acquired(
                        doc, Lease(doc["_id"], generation_id, held["token"], held.get("credits") or {})
                    )
            docs = [await self._refresh(doc, now) for doc in docs]
            verdicts = [assess(doc, estimate, now) for doc in docs]
            eligible = [doc for doc, verdict in zip(docs, verdicts, strict=True) if verdict.kind == "ok"]
            for doc in rank(eligible, estimate, now):
                lease = await self._take(doc, generation_id, estimate, now)
                if lease is not None:
                    return Acquired(doc, lease)
            if not eligible:
                return self._why_not(verdicts, manifest, pinned)
            # every eligible account was taken between our read and our write: look again
        return Wait("every eligible account was just taken by other jobs")

    @staticmethod
    def _why_not(
        verdicts: list[Verdict], manifest: ProviderManifest, pinned: str | None
    ) -> Wait | Unavailable:
        waits = [v for v in verdicts if v.kind == "wait"]
        if waits:
            until = min((v.until for v in waits if v.until), default=None)
            return Wait("; ".join(v.reason for v in waits), until)
        code = "pinned_account_unavailable" if pinned else "no_account_available"
        reasons = "; ".join(v.reason for v in verdicts)
        return Unavailable(code, reasons or f"provider {manifest.id!r} has no accounts")

    async def _take(
        self, doc: dict[str, Any], gid: str, estimate: dict[str, int], now: datetime
    ) -> Lease | None:
        limit = int(doc.get("concurrency_limit") or 1)
        tracked = set(doc.get("tracked") or [])
        guard: dict[str, Any] = {
            "_id": doc["_id"],
            "status": "active",
            "enabled": True,
            "concurrency_limit": doc.get("concurrency_limit"),
            "slots_used": {"$lt": limit},
            f"leases.{gid}": {"$exists": False},
        }
        untracked = sorted(ct for ct in estimate if ct not in tracked)
        if untracked:  # a balance that became known since our read must be checked: read again
            guard["tracked"] = {"$nin": untracked}
        for credit_type, needed in estimate.items():
            if credit_type in tracked:
                guard[f"available.{credit_type}"] = {"$gte": needed}
        token = new_id()
        lease = {
            "token": token,
            "holder": self.holder,
            "acquired_at": now.timestamp(),
            "expires_at": (now + self.lease_ttl).timestamp(),
            "credits": dict(estimate),
            "settled": False,
        }
        update = {
            "$set": {f"leases.{gid}": lease, "last_used_at": now.timestamp()},
            "$inc": {"slots_used": 1, **{f"available.{ct}": -n for ct, n in estimate.items() if n}},
        }
        if (await self.accounts.update_one(guard, update)).matched_count:
            return Lease(doc["_id"], gid, token, dict(estimate))
        return None

    async def _refresh(self, doc: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The document after reclaiming its expired leases and ending an expired cooldown."""
        changed = False
        if "slots_used" not in doc:  # an account stored before leases existed
            await self.accounts.update_one(
                {"_id": doc["_id"], "slots_used": {"$exists": False}},
                {"$set": {"slots_used": 0, "leases": {}}},
            )
            changed = True
        for gid, lease in list((doc.get("leases") or {}).items()):
            if lease["expires_at"] <= now.timestamp():
                give_back = not lease.get("settled") and not await self.is_submitted(gid)
                changed |= await self._end(doc["_id"], gid, lease, give_back)
        if cooldown_over(doc, now):
            await set_status(self.db, self.broker, doc["_id"], "active", "cooldown over")
            changed = True
        if not changed:
            return doc
        return await self.accounts.find_one({"_id": doc["_id"]}) or doc

    async def release(
        self, account_id: str, generation_id: str, *, return_credits: bool | None = None
    ) -> bool:
        """End the job's lease; its credits come back unless billing settles them (`settled`)."""
        doc = await self.accounts.find_one({"_id": account_id})
        lease = ((doc or {}).get("leases") or {}).get(generation_id)
        if not lease:
            return False
        give_back = not lease.get("settled") if return_credits is None else return_credits
        return await self._end(account_id, generation_id, lease, give_back)

    async def _end(self, account_id: str, gid: str, lease: dict[str, Any], give_back: bool) -> bool:
        inc = {"slots_used": -1}
        if give_back:
            inc.update({f"available.{ct}": n for ct, n in (lease.get("credits") or {}).items() if n})
        result = await self.accounts.update_one(
            {"_id": account_id, f"leases.{gid}.token": lease["token"]},
            {"$unset": {f"leases.{gid}": ""}, "$inc": inc},
        )
        return bool(result.matched_count)

    async def extend(self, lease: Lease, expires_at: float) -> None:
        """Keep the slot and the hold (not settled: they still come back if the job never reached the
        provider) until `expires_at`, epoch seconds: for a submit whose outcome nobody knows yet."""
        gid = lease.generation_id
        doc = await self.accounts.find_one({"_id": lease.account_id})
        held = ((doc or {}).get("leases") or {}).get(gid)
        if not held or held["token"] != lease.token or held.get("settled"):
            return
        # The whole lease is rewritten, not single fields: see pixsim_runtime.accounts on nx-27017.
        await self.accounts.update_one(
            {"_id": lease.account_id, f"leases.{gid}.token": lease.token},
            {"$set": {f"leases.{gid}": {**held, "expires_at": expires_at}}},
        )

    async def settle_by_billing(self, lease: Lease, expires_at: float) -> None:
        """The job was submitted: its hold is billing's to settle; the slot lasts until the job ends
        (or until `expires_at`, epoch seconds, if its end is never seen)."""
        gid = lease.generation_id
        doc = await self.accounts.find_one({"_id": lease.account_id})
        held = ((doc or {}).get("leases") or {}).get(gid)
        if not held or held["token"] != lease.token or held.get("settled"):
            return
        # The whole lease is rewritten, not single fields: see pixsim_runtime.accounts on nx-27017.
        await self.accounts.update_one(
            {"_id": lease.account_id, f"leases.{gid}.token": lease.token},
            {
                "$set": {
                    f"leases.{gid}": {**held, "settled": True, "expires_at": expires_at},
                    "cooldown_streak": 0,
                }
            },
        )
