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
`entries` is the number of the last one, and it carries the entries of its last fold whole, as
`pending`. The events of a balance that arrive together are booked as one group (a group commit):
1. their entries are looked for by the event ids (their `_id`): one found is booked already;
2. the balance folds the rest: ONE update guarded by the version (`entries: v`) adds their deltas,
   increments `entries` by k and sets `pending` to their entries, numbered v + 1 ... v + k. Whoever folds
   at v has made sure the entries of v's fold (the `pending` it replaces) are written: every entry up to
   a balance's version, but those of its `pending`, exists, so an event is booked exactly when its entry
   exists or it is in the balance's `pending`;
3. the entries are inserted (one `insert`), with their `seq` and `applied` (what the ledger API shows),
   as `pending` has them;
4. the account's `available` folds the entries in number order behind its own version,
   `billed.<credit type>` (the dispatcher moves `available` too, by its own atomic updates, never
   touching that version), as many at once as it has at hand; when it is behind it reads the entries by
   (`balance_id`, `seq`).
Step 1 comes after the version of step 2 was seen, so a fold that matches cannot book an event twice:
had the event taken a number up to v, its entry was written before the balance passed v's fold, so
before v was seen (or it is in v's `pending`, whose entries are known written). When the fold matches
nothing (another replica folded, or this process's guess of the version was stale), the balance is
read: the events in its `pending` were folded by an earlier or a concurrent delivery, and writing those
entries (idempotent: keyed by the event ids) finishes their booking; the rest of the group goes back to
step 1 at the version read. A crash between any two writes is finished by the redelivery, at any time
later, however many events were booked in between (or by the next fold of the balance, which writes
the entries a crash left unwritten). With this process's guess of the version right (no crash, no other
replica in between), a group costs 3 round trips (steps 1 to 3), and 4 for a user account, whatever its
size; an event alone is a group of one. A sync's difference depends on the balance it follows, so a sync
is always a group of its own, folded at a version just read. If a group fails, each of its events is
booked again alone, so one event that cannot be booked never fails the others with it.
`invariants.check_account` verifies the result.
`PIXSIM_FAULT_POINT=billing.after_*` kills billing after each write (tests only; see
`pixsim_runtime.faults`).

Stored before this design (numbered claims in `ledger_seq`, entries upserted before their fold and
marked `applied` after it), a balance at rest books on: its entries carry their numbers. An entry such
a billing left half-booked (not `applied`) is refused loudly, never guessed at: drain billing before
upgrading (pre-release: there is no migration). A `pending` stored as one entry (before groups) is read
as a group of one.
"""

from __future__ import annotations

import asyncio
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
from pixsim_runtime.group_commit import DUPLICATE_KEY, settle
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

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
#: How many entries the account's fold reads (and folds) at once when it is behind.
CATCH_UP = 200

#: The most events booked in one group (they all ride in the balance's `pending`).
MAX_GROUP = 100
#: The bookings waiting per balance in this process (per database): one task books them, a group at a
#: time, and what arrives meanwhile forms the next group. Correctness never depends on it (the writes
#: above are safe from any number of processes); it saves round trips, and concurrent deliveries for one
#: balance would otherwise all race for the same version, each retrying after the others' folds.
_GROUPS: dict[tuple[int, str, str], _Bookings] = {}
#: What this process last saw of each balance's `entries` and each account's `billed.<type>` (per
#: database): a first guess for the next compare-and-set, which saves a read when no other replica moved
#: it meanwhile. A balance's version is kept only once the entries of its `pending` are known written, so
#: a fold behind the guess keeps "every entry up to the version exists"; a stale guess matches nothing,
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
    cached = _cached(db, key)
    bookings = _GROUPS.setdefault(cached, _Bookings())
    done: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
    bookings.waiting.append((event, done))
    if bookings.task is None or bookings.task.done():
        bookings.task = asyncio.create_task(_book_waiting(db, key, cached, bookings))
    return await done


class _Bookings:
    """The events of one balance waiting to be booked, and the task booking them."""

    __slots__ = ("task", "waiting")

    def __init__(self) -> None:
        self.waiting: list[tuple[CreditEvent, asyncio.Future[dict[str, Any] | None]]] = []
        self.task: asyncio.Task[None] | None = None


async def _book_waiting(
    db: AsyncDatabase, key: str, cached: tuple[int, str, str], bookings: _Bookings
) -> None:
    group: list[Any] = []
    try:
        await asyncio.sleep(0)  # let the other handlers of the same fetch add their events first
        while bookings.waiting:
            group, bookings.waiting = bookings.waiting[:MAX_GROUP], bookings.waiting[MAX_GROUP:]
            for run in _runs(group):
                try:
                    await _book_run(db, key, run)
                except Exception as exc:  # noqa: BLE001 - booked again one by one: only a bad one fails
                    if len(run) == 1:
                        settle(run[0][1], error=exc)
                        continue
                    for one in run:
                        try:
                            await _book_run(db, key, [one])
                        except Exception as error:  # noqa: BLE001 - that delivery fails (and is retried)
                            settle(one[1], error=error)
    except BaseException as exc:  # cancelled (shutting down): nobody waits for an answer that never comes
        for _, done in (*group, *bookings.waiting):
            settle(done, error=exc)
        bookings.waiting.clear()
        raise
    finally:
        if _GROUPS.get(cached) is bookings and not bookings.waiting:
            del _GROUPS[cached]


def _runs(group: list[Any]) -> list[list[Any]]:
    """The group in arrival order, cut so that every sync is booked alone."""
    runs: list[list[Any]] = [[]]
    for item in group:
        if isinstance(item[0], CreditsSynced):
            runs += [[item], []]
        else:
            runs[-1].append(item)
    return [run for run in runs if run]


async def _book_run(db: AsyncDatabase, key: str, run: list[Any]) -> None:
    """Book the events of `run` as one group, then answer each caller: its entry, or None for an event
    booked before (or delivered twice in the group: the first copy gets the entry)."""
    events = [event for event, _ in run]
    booked, upto, known = await _book(db, key, events)
    if not is_system_account(events[0].account_id):  # system accounts have no document and no gate
        # Also for events booked already: a crash may have come between their booking and this.
        await _fold_account(db, key, events[0].account_id, events[0].credit_type, upto, known)
    for event, done in run:
        settle(done, booked.pop(event.event_id, None))


def _cached(db: AsyncDatabase, key: str) -> tuple[int, str, str]:
    return id(db.client), db.name, key


async def _book(
    db: AsyncDatabase, key: str, events: list[CreditEvent]
) -> tuple[dict[str, dict[str, Any]], int, dict[int, dict[str, Any]]]:
    """Fold the events not booked yet into their balance, as one group. Returns their entries by event id,
    a version of the balance every entry up to which is written, and the entries at hand by number."""
    ledger, cached = db[LEDGER], _cached(db, key)
    balance: dict[str, Any] | None = None
    # A sync's difference depends on the balance it follows: always read that, never guess its version.
    version = None if isinstance(events[0], CreditsSynced) else _VERSIONS.get(cached)
    todo = list({event.event_id: event for event in events}.values())
    known: dict[int, dict[str, Any]] = {}
    upto = 0
    while True:
        if version is None:
            balance, version, last = await _observe(db, key)
            known.update((entry["seq"], entry) for entry in last)
            upto = max(upto, version)
            folded = {entry["_id"] for entry in last}  # by an earlier or a concurrent delivery
            if not (todo := [event for event in todo if event.event_id not in folded]):
                return {}, upto, known
        # Looked for only now, after `version` was seen: see the module's docstring.
        found = await ledger.find({"_id": {"$in": [event.event_id for event in todo]}}).to_list()
        for entry in found:
            if not entry.get("applied") or entry.get("seq") is None:
                raise RuntimeError(
                    f"ledger entry {entry['_id']} was left half-booked by an older billing "
                    "(claims in ledger_seq): finish it with that version before upgrading"
                )
            upto = max(upto, int(entry["seq"]))
        booked_before = {entry["_id"] for entry in found}
        if not (todo := [event for event in todo if event.event_id not in booked_before]):
            return {}, max(upto, _VERSIONS.get(cached, 0)), known
        entries = [_entry(event, key, version + n, balance) for n, event in enumerate(todo, start=1)]
        if await _fold(db, key, version, entries):
            await fault_point("billing.after_fold")
            await _write(ledger, entries)
            await fault_point("billing.after_entry")
            version += len(entries)
            _VERSIONS[cached] = version
            known.update((entry["seq"], entry) for entry in entries)
            return {entry["_id"]: entry for entry in entries}, max(upto, version), known
        _VERSIONS.pop(cached, None)
        version = None  # another replica folded, or the guess was stale: read the balance


def pending_entries(balance: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The entries of the balance's last fold, as it carries them (one entry before groups: a dict)."""
    pending = (balance or {}).get("pending") or []
    return [_from_pending(p) for p in ([pending] if isinstance(pending, dict) else pending)]


async def _observe(db: AsyncDatabase, key: str) -> tuple[dict[str, Any] | None, int, list[dict[str, Any]]]:
    """Read the balance and write the entries of its last fold (if a crash left them unwritten): the
    balance, its version, and those entries."""
    balance = await db[BALANCES].find_one({"_id": key})
    version = int((balance or {}).get("entries", 0))
    last = pending_entries(balance)
    if last:
        numbers = [entry.get("seq") for entry in last]
        if numbers != list(range(version - len(last) + 1, version + 1)):
            raise RuntimeError(f"balance {key}: pending entries numbered {numbers}, not up to {version}")
        await _write(db[LEDGER], last)
        await fault_point("billing.after_pending_entry")
    # (A balance without `pending` is new, or was last folded before this design: its entries exist.)
    _VERSIONS[_cached(db, key)] = version
    return balance, version, last


async def _write(ledger: AsyncCollection, entries: list[dict[str, Any]]) -> None:
    """Insert the entries, once: their `_id` is the event id, and whoever writes one writes the same entry
    (the balance's `pending` has it)."""
    try:
        await ledger.insert_many([dict(entry) for entry in entries], ordered=False)
    except BulkWriteError as exc:
        if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
            raise
        # the others were written already: by an earlier or a concurrent delivery, or by the next fold


async def _fold(db: AsyncDatabase, key: str, version: int, entries: list[dict[str, Any]]) -> bool:
    """The one guarded update that books `entries` as numbers version + 1, ...; False when the balance
    is not at `version` (any more)."""
    funding = any(entry["kind"] in FUNDING for entry in entries)
    update: dict[str, Any] = {
        "$inc": {
            "balance": sum(entry["delta_balance"] for entry in entries),
            "reserved": sum(entry["delta_reserved"] for entry in entries),
            "spent": sum(entry["delta_spent"] for entry in entries),
            "entries": len(entries),
        },
        "$set": {
            "pending": [_as_pending(entry) for entry in entries],
            "updated_at": datetime.now(UTC),
            **({"tracked": True} if funding else {}),
        },
    }
    if version == 0:  # the balance's first fold creates it (with the filter's `_id` and `entries: 0`)
        first = entries[0]
        update["$setOnInsert"] = {
            "account_id": first["account_id"],
            "provider_id": first["provider_id"],
            "credit_type": first["credit_type"],
            **({} if funding else {"tracked": False}),
        }
    try:
        result = await db[BALANCES].update_one({"_id": key, "entries": version}, update, upsert=version == 0)
    except DuplicateKeyError:  # the upsert of a first fold: the balance exists, at another version
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
        if done + 1 not in known:
            await _numbered(db, key, done + 1, upto, known)
        run: list[dict[str, Any]] = []  # the entries after `done` at hand, in order, folded at once
        while (n := done + 1 + len(run)) <= upto and n in known and len(run) < CATCH_UP:
            run.append(known[n])
        guard: dict[str, Any] = {"_id": account_id, field: done if done else {"$exists": False}}
        update: dict[str, Any] = {
            "$inc": {f"available.{credit_type}": sum(entry["delta_available"] for entry in run)},
            "$set": {field: done + len(run)},
        }
        if any(entry["kind"] in FUNDING for entry in run):
            update["$addToSet"] = {"tracked": credit_type}
        if (await accounts.update_one(guard, update)).matched_count:
            await fault_point("billing.after_account")
            done += len(run)
        else:
            done = None  # moved by another process (or the guess was stale): read again
