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
window of recent ids. Each balance is a sequence of entries numbered 1, 2, 3, ... (`seq`); its version
`entries` is the number of the last one, and it carries that last one whole, as `pending`. Booking:
1. the entry is looked for by the event id (its `_id`): found, the event is booked already;
2. the balance folds the event: ONE update guarded by the version (`entries: v`) adds the deltas,
   increments `entries` and sets `pending` to the event's entry, numbered v + 1. Whoever folds at v has
   made sure the entry of v (the `pending` it replaces) is written: every entry below a balance's
   version exists, so an event is booked exactly when its entry exists or it is the balance's `pending`;
3. the entry is inserted, with its `seq` and `applied` (what the ledger API shows), as `pending` has it;
4. the account's `available` folds the entries in number order behind its own version,
   `billed.<credit type>` (the dispatcher moves `available` too, by its own atomic updates, never
   touching that version); when it is behind it reads the entries by (`balance_id`, `seq`).
Step 1 comes after the version of step 2 was seen, so a fold that matches cannot book an event twice:
had the event taken a number below v, its entry was written before the balance passed that number, so
before v was seen; had it taken v, v's entry is known written. When the fold matches nothing (another
replica folded, or this process's guess of the version was stale), the balance is read: if its
`pending` is this event, an earlier or a concurrent delivery folded it, and writing its entry
(idempotent: keyed by the event id) finishes the booking; otherwise the entry of `pending` is written,
step 1 is repeated and the fold retried at the version read. A crash between any two writes is
finished by the redelivery, at any time later, however many events were booked in between (or by the
next fold of the balance, which writes the entry a crash left unwritten). With this process's guess
of the version right (no crash, no other replica in between), an event costs 3 round trips (steps
1 to 3), and 4 for a user account. `invariants.check_account` verifies the result.
`PIXSIM_FAULT_POINT=billing.after_*` kills billing after each write (tests only; see
`pixsim_runtime.faults`).

Stored before this design (numbered claims in `ledger_seq`, entries upserted before their fold and
marked `applied` after it), a balance at rest books on: its entries carry their numbers. An entry such
a billing left half-booked (not `applied`) is refused loudly, never guessed at: drain billing before
upgrading (pre-release: there is no migration).
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
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

LEDGER = "ledger"
BALANCES = "balances"
KINDS = {
    CreditsGranted: "grant",
    CreditsReserved: "reserved",
    CreditsCharged: "charged",
    CreditsReleased: "released",
    CreditsSynced: "adjustment",
}
#: Kinds after which a balance is known (tracked) and new credits may revive an exhausted account.
FUNDING = {"grant", "adjustment"}
#: The points after each of billing's writes where a test can kill it (`PIXSIM_FAULT_POINT`).
FAULT_POINTS = (
    "billing.after_pending_entry",  # the entry of the balance's `pending`, written by whoever read it
    "billing.after_fold",
    "billing.after_entry",
    "billing.after_account",
)
#: How many entries the account's fold reads at once when it is behind.
CATCH_UP = 200

#: One booking at a time per balance in this process: correctness never depends on it (the writes
#: above are safe from any number of processes), but concurrent deliveries for one balance would
#: otherwise all race for the same version, each retrying after the others' folds.
_LOCKS: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
#: What this process last saw of each balance's `entries` and each account's `billed.<type>` (per
#: database): a first guess for the next compare-and-set, which saves a read when no other replica moved
#: it meanwhile. A balance's version is kept only once the entry of its `pending` is known written, so
#: a fold behind the guess keeps "every entry below the version exists"; a stale guess matches nothing,
#: and the balance is read.
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


async def create_indexes(db: AsyncDatabase) -> None:
    """Entries by number: the account's fold reads them so when it is behind (`_numbered`)."""
    await db[LEDGER].create_index([("balance_id", ASCENDING), ("seq", ASCENDING)])


def _entry(event: CreditEvent, key: str, seq: int, balance: dict[str, Any] | None) -> dict[str, Any]:
    """The event's entry as number `seq` of its balance; `balance` is the one it follows (for a sync)."""
    booked = datetime.now(UTC)
    change = deltas(event, balance)
    synced = isinstance(event, CreditsSynced)
    entry = {
        "_id": event.event_id,
        "kind": KINDS[type(event)],
        "generation_id": event.generation_id,
        "provider_id": event.provider_id,
        "account_id": event.account_id,
        "credit_type": event.credit_type,
        "amount": change["balance"] if synced else event.amount,  # type: ignore[attr-defined]
        "reason": f"provider reports {event.provider_balance}" if synced else getattr(event, "reason", None),
        "occurred_at": event.occurred_at,
        "booked_at": booked,
        "balance_id": key,
        # Newest-first paging sorts and compares this string, not the datetime: nx-27017 cannot
        # range-compare datetimes or date-like strings. Microseconds since the epoch, then the event id.
        "sort_key": f"b{round(booked.timestamp() * 1e6):017d}:{event.event_id}",
        "seq": seq,
        "applied": True,  # an entry is written once booked (the ledger API shows `applied` entries)
        "delta_balance": change["balance"],
        "delta_reserved": change["reserved"],
        "delta_spent": change["spent"],
        "delta_available": change["available"],
    }
    if synced:
        entry["provider_balance"] = event.provider_balance  # type: ignore[attr-defined]
    return entry


def _as_pending(entry: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": entry["_id"], **{k: v for k, v in entry.items() if k != "_id"}}


def _from_pending(pending: dict[str, Any]) -> dict[str, Any]:
    return {"_id": pending["event_id"], **{k: v for k, v in pending.items() if k != "event_id"}}


async def apply(db: AsyncDatabase, event: CreditEvent) -> dict[str, Any] | None:
    """Book the event; returns its ledger entry, or None when it had been booked already."""
    key = balance_id(event.account_id, event.credit_type)
    lock = _LOCKS.setdefault(key, asyncio.Lock())
    async with lock:
        booked, upto, known = await _book(db, key, event)
        if not is_system_account(event.account_id):  # system accounts have no document and no gate
            # Also for an event booked already: a crash may have come between its booking and this.
            await _fold_account(db, key, event.account_id, event.credit_type, upto, known)
    return booked


def _cached(db: AsyncDatabase, key: str) -> tuple[int, str, str]:
    return id(db.client), db.name, key


async def _book(
    db: AsyncDatabase, key: str, event: CreditEvent
) -> tuple[dict[str, Any] | None, int, dict[int, dict[str, Any]]]:
    """Fold the event into its balance unless it is booked already. Returns its entry (None when it was
    booked before), a version of the balance every entry up to which is written, and the entries at hand
    by number."""
    ledger, cached = db[LEDGER], _cached(db, key)
    balance: dict[str, Any] | None = None
    # A sync's difference depends on the balance it follows: always read that, never guess its version.
    version = None if isinstance(event, CreditsSynced) else _VERSIONS.get(cached)
    while True:
        if version is None:
            balance, version, last = await _observe(db, key)
            if last is not None and last["_id"] == event.event_id:
                return None, version, {version: last}  # an earlier or a concurrent delivery folded it
        # Looked for only now, after `version` was seen: see the module's docstring.
        found = await ledger.find_one({"_id": event.event_id})
        if found is not None:
            if not found.get("applied") or found.get("seq") is None:
                raise RuntimeError(
                    f"ledger entry {event.event_id} was left half-booked by an older billing "
                    "(claims in ledger_seq): finish it with that version before upgrading"
                )
            return None, max(int(found["seq"]), _VERSIONS.get(cached, 0)), {}
        entry = _entry(event, key, version + 1, balance)
        if await _fold(db, key, version, entry):
            await fault_point("billing.after_fold")
            await _write(ledger, entry)
            await fault_point("billing.after_entry")
            _VERSIONS[cached] = version + 1
            return entry, version + 1, {version + 1: entry}
        _VERSIONS.pop(cached, None)
        version = None  # another replica folded, or the guess was stale: read the balance


async def _observe(db: AsyncDatabase, key: str) -> tuple[dict[str, Any] | None, int, dict[str, Any] | None]:
    """Read the balance and write the entry of its last fold (if a crash left it unwritten): the balance,
    its version, and that last entry."""
    balance = await db[BALANCES].find_one({"_id": key})
    version = int((balance or {}).get("entries", 0))
    last = None
    if pending := (balance or {}).get("pending"):
        last = _from_pending(pending)
        if last.get("seq") != version:
            raise RuntimeError(f"balance {key}: pending entry {last['_id']} is not number {version}")
        await _write(db[LEDGER], last)
        await fault_point("billing.after_pending_entry")
    # (A balance without `pending` is new, or was last folded before this design: its entries exist.)
    _VERSIONS[_cached(db, key)] = version
    return balance, version, last


async def _write(ledger: AsyncCollection, entry: dict[str, Any]) -> None:
    """Insert the entry, once: its `_id` is the event id, and whoever writes it writes the same entry
    (the balance's `pending` is that entry)."""
    try:
        await ledger.insert_one(dict(entry))
    except DuplicateKeyError:
        pass  # written already: by an earlier or a concurrent delivery, or by the next fold


async def _fold(db: AsyncDatabase, key: str, version: int, entry: dict[str, Any]) -> bool:
    """The one guarded update that books `entry` as number version + 1; False when the balance is not at
    `version` (any more)."""
    update: dict[str, Any] = {
        "$inc": {
            "balance": entry["delta_balance"],
            "reserved": entry["delta_reserved"],
            "spent": entry["delta_spent"],
            "entries": 1,
        },
        "$set": {
            "pending": _as_pending(entry),
            "updated_at": datetime.now(UTC),
            **({"tracked": True} if entry["kind"] in FUNDING else {}),
        },
    }
    if version == 0:  # the balance's first entry creates it (with the filter's `_id` and `entries: 0`)
        update["$setOnInsert"] = {
            "account_id": entry["account_id"],
            "provider_id": entry["provider_id"],
            "credit_type": entry["credit_type"],
            **({} if entry["kind"] in FUNDING else {"tracked": False}),
        }
    try:
        result = await db[BALANCES].update_one({"_id": key, "entries": version}, update, upsert=version == 0)
    except DuplicateKeyError:  # the upsert of a first entry: the balance exists, at another version
        return False
    return bool(result.matched_count or result.upserted_id is not None)


async def _numbered(
    db: AsyncDatabase, key: str, first: int, last: int, known: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """Entry number `first` of the balance (and the next ones up to `last`, into `known`)."""
    docs = (
        await db[LEDGER]
        .find({"balance_id": key, "seq": {"$gte": first, "$lte": last}, "applied": True})
        .sort("seq", ASCENDING)
        .limit(CATCH_UP)
        .to_list()
    )
    for doc in docs:
        known.setdefault(int(doc["seq"]), doc)
    if first not in known:  # every entry below the balance's version is written before it moves on
        raise RuntimeError(f"balance {key}: entry {first} is missing")
    return known[first]


async def _fold_account(
    db: AsyncDatabase,
    key: str,
    account_id: str,
    credit_type: str,
    upto: int,
    known: dict[int, dict[str, Any]],
) -> None:
    """Bring the account's `available.<credit type>` up to entry `upto` of the balance, in order."""
    accounts = db[ACCOUNTS]
    field, cached = f"billed.{credit_type}", (*_cached(db, account_id), credit_type)
    done = _BILLED.get(cached)
    while True:
        if done is None:
            account = await accounts.find_one({"_id": account_id}, {"billed": 1})
            if account is None:
                return  # a deleted account has no figure to keep
            done = int((account.get("billed") or {}).get(credit_type, 0))
        _BILLED[cached] = done
        if done >= upto:
            return
        entry = known.get(done + 1) or await _numbered(db, key, done + 1, upto, known)
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
