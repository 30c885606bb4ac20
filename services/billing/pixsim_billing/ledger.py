"""The ledger: one entry per credit event, and balances per (account, credit type) folded from it in order.

Entries and what they do (`delta_*` are stored on every entry, so the sum of a balance's entries is
exactly that balance):

| event | entry kind | balance | reserved | spent | the account's `available` |
|---|---|---|---|---|---|
| credits.granted | grant | +amount | | | +amount |
| credits.reserved | reserved | | +amount | | (already held by the dispatcher) |
| credits.charged | charged | -actual | -reserved | +actual | +reserved - actual |
| credits.released | released | | -amount | | +amount |
| credits.synced | adjustment | +difference | | | +difference |

The difference of a sync is the provider's figure minus ours (balance minus open reservations) at the
moment the sync takes its place in the balance's order; a balance is never overwritten.

**Exactly once, through any crash, for ever.** There are no multi-document transactions, so no two
writes happen together; instead every write is safe to repeat, and nothing depends on remembering a
window of recent ids. Each balance is a sequence of entries, numbered 1, 2, 3, ...:
1. the entry is upserted, keyed by the event id (a duplicate finds the first delivery's entry);
2. it takes the next number: it first notes the number it is about to claim on itself (`seq`, changed
   only by a compare-and-set and only once that number is proven taken by another entry), then inserts
   the claim `ledger_seq/<balance id>#<number>`. Claims are unique by `_id`, never deleted and without
   gaps, so an event holds at most one number, and a redelivery finds it again from its entry;
3. the balance folds claims in number order: each fold is one update guarded by the balance's
   `entries` count (its version), which it increments. Any delivery folds every claim up to its own,
   so a claim left by a delivery that died is booked by the next one;
4. the entry is marked `applied` (booked: the ledger API shows it);
5. the account's `available` folds the same claims behind its own version, `billed.<credit type>`
   (the dispatcher moves `available` too, by its own atomic updates, never touching that version).
A crash between any two of these writes is finished by the redelivery, at any time later, however
many events were booked in between; a duplicate delivered at the same moment matches nothing.
`invariants.check_account` verifies the result. `PIXSIM_FAULT_POINT=billing.after_*` kills billing
between the writes (tests only; see `pixsim_runtime.faults`).
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime
from typing import Any

from pixsim_contracts import (
    CreditEvent,
    CreditsCharged,
    CreditsGranted,
    CreditsReleased,
    CreditsReserved,
    CreditsSynced,
)
from pixsim_runtime.accounts import ACCOUNTS, is_system_account
from pixsim_runtime.faults import fault_point
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

LEDGER = "ledger"
BALANCES = "balances"
CLAIMS = "ledger_seq"
KINDS = {
    CreditsGranted: "grant",
    CreditsReserved: "reserved",
    CreditsCharged: "charged",
    CreditsReleased: "released",
    CreditsSynced: "adjustment",
}
#: Kinds after which a balance is known (tracked) and new credits may revive an exhausted account.
FUNDING = {"grant", "adjustment"}
#: The points between billing's writes where a test can kill it (`PIXSIM_FAULT_POINT`).
FAULT_POINTS = (
    "billing.after_entry",
    "billing.after_claim_intent",
    "billing.after_claim",
    "billing.after_balance",
    "billing.after_marked",
    "billing.after_account",
)

#: One booking at a time per balance in this process: correctness never depends on it (the writes
#: above are safe from any number of processes), but concurrent deliveries for one balance would
#: otherwise all race for the same claim and fold the same entries, each retrying the others' work.
_LOCKS: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
#: What this process last saw of each balance's `entries` and each account's `billed.<type>` (per
#: database): a first guess for the next compare-and-set, which saves a read when no other replica moved
#: it meanwhile. Only ever a guess for a guarded write, which then matches nothing and the document is
#: read; never used to choose a claim's number (a guess ahead of the truth would leave a gap).
_VERSIONS: dict[tuple[int, str, str], int] = {}
_BILLED: dict[tuple[int, str, str, str], int] = {}


def deltas(event: CreditEvent, balance: dict[str, Any] | None = None) -> dict[str, int]:
    """How an event moves the balance, its reservations, its spending and the account's available figure.
    `balance` (the balance document just before the event is folded in) is needed for a sync only."""
    if isinstance(event, CreditsGranted):
        return {"balance": event.amount, "reserved": 0, "spent": 0, "available": event.amount}
    if isinstance(event, CreditsReserved):
        return {"balance": 0, "reserved": event.amount, "spent": 0, "available": 0}
    if isinstance(event, CreditsCharged):
        return {
            "balance": -event.amount,
            "reserved": -event.reserved,
            "spent": event.amount,
            "available": event.reserved - event.amount,
        }
    if isinstance(event, CreditsReleased):
        return {"balance": 0, "reserved": -event.amount, "spent": 0, "available": event.amount}
    if isinstance(event, CreditsSynced):
        return sync_deltas(event.provider_balance, balance)
    raise TypeError(f"not a credit event: {type(event).__name__}")


def sync_deltas(provider_balance: int, balance: dict[str, Any] | None) -> dict[str, int]:
    ours = (balance or {}).get("balance", 0) - (balance or {}).get("reserved", 0)
    difference = provider_balance - ours
    return {"balance": difference, "reserved": 0, "spent": 0, "available": difference}


def balance_id(account_id: str, credit_type: str) -> str:
    return f"{account_id}:{credit_type}"


def claim_id(key: str, seq: int) -> str:
    return f"{key}#{seq:012d}"


def _entry(event: CreditEvent, key: str) -> dict[str, Any]:
    kind = KINDS[type(event)]
    booked = datetime.now(UTC)
    entry = {
        "kind": kind,
        "generation_id": event.generation_id,
        "provider_id": event.provider_id,
        "account_id": event.account_id,
        "credit_type": event.credit_type,
        "amount": None,
        "reason": getattr(event, "reason", None),
        "occurred_at": event.occurred_at,
        "booked_at": booked,
        "balance_id": key,
        # Newest-first paging sorts and compares this string, not the datetime: nx-27017 cannot
        # range-compare datetimes or date-like strings. Microseconds since the epoch, then the event id.
        "sort_key": f"b{round(booked.timestamp() * 1e6):017d}:{event.event_id}",
        "applied": False,
        "seq": None,
    }
    if isinstance(event, CreditsSynced):  # its figures are known only when it takes its place: see _fold
        entry.update(
            reason=f"provider reports {event.provider_balance}", provider_balance=event.provider_balance
        )
        return entry
    change = deltas(event)
    entry.update(
        amount=event.amount,
        delta_balance=change["balance"],  # type: ignore[attr-defined]
        delta_reserved=change["reserved"],
        delta_spent=change["spent"],
        delta_available=change["available"],
    )
    return entry


async def apply(db: AsyncDatabase, event: CreditEvent) -> dict[str, Any] | None:
    """Book the event; returns its ledger entry, or None when it had been booked already."""
    ledger = db[LEDGER]
    key = balance_id(event.account_id, event.credit_type)
    lock = _LOCKS.setdefault(key, asyncio.Lock())
    async with lock:
        fresh = _entry(event, key)
        created = await ledger.update_one({"_id": event.event_id}, {"$setOnInsert": fresh}, upsert=True)
        await fault_point("billing.after_entry")
        entry = (
            {"_id": event.event_id, **fresh}
            if created.upserted_id is not None
            else await ledger.find_one({"_id": event.event_id})
        )
        if entry is None:
            raise RuntimeError(f"ledger entry {event.event_id} vanished")
        booked_now = not entry.get("applied")
        known: dict[int, dict[str, Any]] = {}  # entries by number, as read or written here
        if booked_now:
            seq = await _claim(db, key, entry, event)
            known[seq] = entry
            if not await _fold(db, key, seq, known):  # another delivery folded it and died before marking it
                await ledger.update_one({"_id": event.event_id}, {"$set": {"applied": True}})
        else:
            _VERSIONS.pop(
                _cached(db, key), None
            )  # a redelivery: read the balance, to finish what a crash left
        if not is_system_account(event.account_id):  # system accounts have no document and no gate
            await _fold_account(db, key, event.account_id, event.credit_type, known)
    return entry if booked_now else None


def _cached(db: AsyncDatabase, key: str) -> tuple[int, str, str]:
    return id(db.client), db.name, key


async def _balance(db: AsyncDatabase, key: str, event: CreditEvent) -> dict[str, Any]:
    balances = db[BALANCES]
    doc = await balances.find_one({"_id": key})
    if doc is None:
        await balances.update_one(
            {"_id": key},
            {
                "$setOnInsert": {
                    "account_id": event.account_id,
                    "provider_id": event.provider_id,
                    "credit_type": event.credit_type,
                    "balance": 0,
                    "reserved": 0,
                    "spent": 0,
                    "entries": 0,
                    "tracked": False,
                }
            },
            upsert=True,
        )
        doc = await balances.find_one({"_id": key})
    if doc is None:
        raise RuntimeError(f"balance {key} could not be created")
    return doc


async def _claim(db: AsyncDatabase, key: str, entry: dict[str, Any], event: CreditEvent) -> int:
    """The number this entry holds in its balance's sequence, claiming the next free one if it has none."""
    ledger, claims = db[LEDGER], db[CLAIMS]
    eid = entry["_id"]
    noted: int | None = entry.get("seq")
    while True:
        taken: int | None = None
        if noted is not None:
            try:
                await claims.insert_one({"_id": claim_id(key, noted), "event_id": eid, "balance_id": key})
                await fault_point("billing.after_claim")
                return noted
            except DuplicateKeyError:
                holder = await claims.find_one({"_id": claim_id(key, noted)})
                if holder is not None and holder["event_id"] == eid:
                    return noted  # claimed by an earlier or a concurrent delivery of this event
                taken = noted
        balance = await _balance(db, key, event)
        candidate = max(int(balance.get("entries", 0)) + 1, (taken or 0) + 1)
        # Note the number before claiming it, moving on only from a number proven taken: a crash after the
        # claim then leaves a note that leads back to it, and the event never holds two numbers.
        moved = await ledger.update_one({"_id": eid, "seq": noted}, {"$set": {"seq": candidate}})
        await fault_point("billing.after_claim_intent")
        if moved.matched_count:
            noted = candidate
        else:  # a concurrent delivery of the same event moved the note first: follow it
            current = await ledger.find_one({"_id": eid}, {"seq": 1})
            noted = (current or {}).get("seq")


async def _claimed_entry(
    db: AsyncDatabase, key: str, seq: int, known: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    if seq in known:
        return known[seq]
    holder = await db[CLAIMS].find_one({"_id": claim_id(key, seq)})
    entry = await db[LEDGER].find_one({"_id": holder["event_id"]}) if holder else None
    if entry is None:  # claims have no gaps and entries are written before their claims
        raise RuntimeError(f"balance {key}: claim {seq} or its entry is missing")
    known[seq] = entry
    return entry


async def _fold(db: AsyncDatabase, key: str, upto: int, known: dict[int, dict[str, Any]]) -> bool:
    """Fold every claim up to `upto` into the balance, in order; True when this call folded `upto` itself."""
    balances, ledger = db[BALANCES], db[LEDGER]
    balance: dict[str, Any] | None = None
    cached = _cached(db, key)
    version = _VERSIONS.get(cached)
    while True:
        if version is None:
            balance = await balances.find_one({"_id": key})
            if balance is None:
                raise RuntimeError(f"balance {key} is missing")
            version = int(balance.get("entries", 0))
        _VERSIONS[cached] = version
        if version >= upto:
            return False
        entry = await _claimed_entry(db, key, version + 1, known)
        if entry.get("delta_balance") is None:  # a sync: its difference from the balance it follows
            if balance is None or int(balance.get("entries", 0)) != version:
                version = None
                continue
            change = sync_deltas(int(entry["provider_balance"]), balance)
            figures = {
                "amount": change["balance"],
                "delta_balance": change["balance"],
                "delta_reserved": 0,
                "delta_spent": 0,
                "delta_available": change["available"],
            }
            # The same figures whoever computes them: the balance at `version` is always the same.
            await ledger.update_one({"_id": entry["_id"]}, {"$set": figures})
            entry.update(figures)
        update: dict[str, Any] = {
            "$inc": {
                "balance": entry["delta_balance"],
                "reserved": entry["delta_reserved"],
                "spent": entry["delta_spent"],
                "entries": 1,
            },
            "$set": {
                "updated_at": datetime.now(UTC),
                **({"tracked": True} if entry["kind"] in FUNDING else {}),
            },
        }
        if not (await balances.update_one({"_id": key, "entries": version}, update)).matched_count:
            version = None  # the guess was stale, or another replica folded it: read again
            continue
        await fault_point("billing.after_balance")
        await ledger.update_one({"_id": entry["_id"]}, {"$set": {"applied": True}})
        await fault_point("billing.after_marked")
        version += 1
        _VERSIONS[cached] = version
        if version == upto:
            return True
        balance = None


async def _fold_account(
    db: AsyncDatabase, key: str, account_id: str, credit_type: str, known: dict[int, dict[str, Any]]
) -> None:
    """Bring the account's `available.<credit type>` up to date with the balance's folded entries."""
    accounts = db[ACCOUNTS]
    field, cached = f"billed.{credit_type}", (*_cached(db, account_id), credit_type)
    target = _VERSIONS.get(_cached(db, key))
    if target is None:
        balance = await db[BALANCES].find_one({"_id": key}, {"entries": 1})
        if balance is None:
            return
        target = _VERSIONS[_cached(db, key)] = int(balance.get("entries", 0))
    done = _BILLED.get(cached)
    while True:
        if done is None:
            account = await accounts.find_one({"_id": account_id}, {"billed": 1})
            if account is None:
                return  # a deleted account has no figure to keep
            done = int((account.get("billed") or {}).get(credit_type, 0))
        _BILLED[cached] = done
        if done >= target:
            return
        entry = await _claimed_entry(db, key, done + 1, known)
        guard: dict[str, Any] = {"_id": account_id, field: done if done else {"$exists": False}}
        update: dict[str, Any] = {
            "$inc": {f"available.{credit_type}": entry["delta_available"]},
            "$set": {field: done + 1},
        }
        if entry["kind"] in FUNDING:
            update["$addToSet"] = {"tracked": credit_type}
        if (await accounts.update_one(guard, update)).matched_count:
            await fault_point("billing.after_account")
            done += 1
        else:
            done = None  # moved by another process (or the guess was stale): read again
