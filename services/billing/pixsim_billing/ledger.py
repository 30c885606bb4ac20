"""The ledger: one entry per credit event, and balances per (account, credit type), each applied once.

Entries and what they do (`delta_*` are stored on every entry, so the sum of a balance's entries is
exactly that balance):

| event | entry kind | balance | reserved | spent | the account's `available` |
|---|---|---|---|---|---|
| credits.granted | grant | +amount | | | +amount |
| credits.reserved | reserved | | +amount | | (already held by the dispatcher) |
| credits.charged | charged | -actual | -reserved | +actual | +reserved - actual |
| credits.released | released | | -amount | | +amount |
| credits.synced | adjustment | +difference | | | +difference |

The difference of a sync is the provider's figure minus ours (balance minus open reservations); a
balance is never overwritten. Exactly once without transactions, in single-document writes that are
each safe to repeat:
1. upsert the entry, keyed by the event id, marked `applied: false` (an applied one is skipped);
2. apply its deltas to the balance in one atomic update guarded by the balance's `recent` list of
   event ids, which the same update appends to; a repeat of this step, even from a concurrent
   duplicate delivery, matches nothing;
3. the same for the account's `available` figure, guarded by the account's `billing_seen` list;
4. mark the entry applied.
A crash between steps is finished by the redelivery. The lists keep the last RECENT_IDS ids, far
more than can be in flight for one balance at once.
"""

from __future__ import annotations

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
from pymongo.asynchronous.database import AsyncDatabase

LEDGER = "ledger"
BALANCES = "balances"
RECENT_IDS = 100
KINDS = {CreditsGranted: "grant", CreditsReserved: "reserved", CreditsCharged: "charged",
         CreditsReleased: "released", CreditsSynced: "adjustment"}
#: Kinds after which a balance is known (tracked) and new credits may revive an exhausted account.
FUNDING = {"grant", "adjustment"}


def deltas(event: CreditEvent, balance: dict[str, Any] | None = None) -> dict[str, int]:
    """How an event moves the balance, its reservations, its spending and the account's available figure.
    `balance` (the current balance document) is needed for a sync only."""
    if isinstance(event, CreditsGranted):
        return {"balance": event.amount, "reserved": 0, "spent": 0, "available": event.amount}
    if isinstance(event, CreditsReserved):
        return {"balance": 0, "reserved": event.amount, "spent": 0, "available": 0}
    if isinstance(event, CreditsCharged):
        return {"balance": -event.amount, "reserved": -event.reserved, "spent": event.amount,
                "available": event.reserved - event.amount}
    if isinstance(event, CreditsReleased):
        return {"balance": 0, "reserved": -event.amount, "spent": 0, "available": event.amount}
    if isinstance(event, CreditsSynced):
        ours = (balance or {}).get("balance", 0) - (balance or {}).get("reserved", 0)
        difference = event.provider_balance - ours
        return {"balance": difference, "reserved": 0, "spent": 0, "available": difference}
    raise TypeError(f"not a credit event: {type(event).__name__}")


def balance_id(account_id: str, credit_type: str) -> str:
    return f"{account_id}:{credit_type}"


def _entry(event: CreditEvent, change: dict[str, int], key: str) -> dict[str, Any]:
    kind = KINDS[type(event)]
    amount = change["balance"] if kind == "adjustment" else event.amount  # type: ignore[attr-defined]
    reason = getattr(event, "reason", None)
    booked = datetime.now(UTC)
    if isinstance(event, CreditsSynced):
        reason = f"provider reports {event.provider_balance}"
    return {"kind": kind, "generation_id": event.generation_id, "provider_id": event.provider_id,
            "account_id": event.account_id, "credit_type": event.credit_type, "amount": amount,
            "reason": reason, "delta_balance": change["balance"], "delta_reserved": change["reserved"],
            "delta_spent": change["spent"], "delta_available": change["available"],
            "occurred_at": event.occurred_at, "booked_at": booked, "balance_id": key,
            # Newest-first paging sorts and compares this string, not the datetime: nx-27017 cannot
            # range-compare datetimes or date-like strings. Microseconds since the epoch, then the event id.
            "sort_key": f"b{round(booked.timestamp() * 1e6):017d}:{event.event_id}"}


async def apply(db: AsyncDatabase, event: CreditEvent) -> dict[str, Any] | None:
    """Book the event; returns its ledger entry, or None when it had been booked already."""
    ledger, balances = db[LEDGER], db[BALANCES]
    key = balance_id(event.account_id, event.credit_type)
    current = await balances.find_one({"_id": key}) if isinstance(event, CreditsSynced) else None
    entry = _entry(event, deltas(event, current), key)
    created = await ledger.update_one({"_id": event.event_id}, {"$setOnInsert": {**entry, "applied": False}},
                                      upsert=True)
    if created.upserted_id is None:  # seen before: finish it unless it was fully applied
        stored: dict[str, Any] | None = await ledger.find_one({"_id": event.event_id})
        if stored is None or stored.get("applied"):
            return None
        entry = stored  # the first delivery's figures (a sync's difference must not be recomputed)
    funding = entry["kind"] in FUNDING
    guarded = {"_id": key, "recent": {"$nin": [event.event_id]}}
    change_balance: dict[str, Any] = {
        "$inc": {"balance": entry["delta_balance"], "reserved": entry["delta_reserved"],
                 "spent": entry["delta_spent"], "entries": 1},
        "$push": {"recent": {"$each": [event.event_id], "$slice": -RECENT_IDS}},
        "$set": {"updated_at": datetime.now(UTC), **({"tracked": True} if funding else {})},
    }
    # `$nin`, not `$ne`: nx-27017 matches `$ne` against arrays wrongly; `$nin` is right on both servers.
    if not (await balances.update_one(guarded, change_balance)).matched_count:
        # Either the balance is new (create it, then apply) or this event was applied already (no-op).
        await balances.update_one(
            {"_id": key},
            {"$setOnInsert": {"account_id": event.account_id, "provider_id": event.provider_id,
                              "credit_type": event.credit_type, "balance": 0, "reserved": 0, "spent": 0,
                              "entries": 0, "recent": [], "tracked": False}},
            upsert=True,
        )
        await balances.update_one(guarded, change_balance)
    if not is_system_account(event.account_id):  # system accounts have no document and no gate
        change_account: dict[str, Any] = {
            "$inc": {f"available.{event.credit_type}": entry["delta_available"]},
            "$push": {"billing_seen": {"$each": [event.event_id], "$slice": -RECENT_IDS}},
        }
        if funding:
            change_account["$addToSet"] = {"tracked": event.credit_type}
        await db[ACCOUNTS].update_one({"_id": event.account_id, "billing_seen": {"$nin": [event.event_id]}},
                                      change_account)
    await ledger.update_one({"_id": event.event_id}, {"$set": {"applied": True}})
    return entry
