"""The ledger: one entry per credit event, and balances per (account, credit type), each applied once.

Exactly once without transactions, in single-document writes that are each safe to repeat:
1. upsert the ledger entry, keyed by the event id, marked `applied: false` (an applied one is skipped);
2. apply its deltas to the balance in one atomic update guarded by the balance's `recent` list of
   event ids, which the same update appends to; a repeat of this step, even from a concurrent
   duplicate delivery, matches nothing;
3. mark the entry applied.
A crash between steps is finished by the redelivery. `recent` keeps the last RECENT_IDS ids, far
more than can be in flight for one balance at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from pixsim_contracts import CreditEvent, CreditsCharged, CreditsReleased, CreditsReserved

LEDGER = "ledger"
BALANCES = "balances"
RECENT_IDS = 100


def deltas(event: CreditEvent) -> dict[str, int]:
    """How an event moves the balance: `reserved` (held for running jobs) and `spent` (booked)."""
    if isinstance(event, CreditsReserved):
        return {"reserved": event.amount, "spent": 0}
    if isinstance(event, CreditsCharged):
        return {"reserved": -event.reserved, "spent": event.amount}
    if isinstance(event, CreditsReleased):
        return {"reserved": -event.amount, "spent": 0}
    raise TypeError(f"not a credit event: {type(event).__name__}")


def balance_id(account_id: str, credit_type: str) -> str:
    return f"{account_id}:{credit_type}"


async def apply(db: AsyncDatabase, event: CreditEvent) -> bool:
    """Book the event; False when it had been booked already."""
    ledger, balances = db[LEDGER], db[BALANCES]
    change = deltas(event)
    key = balance_id(event.account_id, event.credit_type)
    entry = {
        "kind": event.type.split(".", 1)[1],
        "generation_id": event.generation_id,
        "provider_id": event.provider_id,
        "account_id": event.account_id,
        "credit_type": event.credit_type,
        "amount": event.amount,
        "delta_reserved": change["reserved"],
        "delta_spent": change["spent"],
        "occurred_at": event.occurred_at,
        "booked_at": datetime.now(UTC),
        "balance_id": key,
    }
    created = await ledger.update_one({"_id": event.event_id}, {"$setOnInsert": {**entry, "applied": False}},
                                      upsert=True)
    if created.upserted_id is None:  # seen before: finish it unless it was fully applied
        current: dict[str, Any] | None = await ledger.find_one({"_id": event.event_id}, {"applied": 1})
        if current and current.get("applied"):
            return False
    guarded = {"_id": key, "recent": {"$nin": [event.event_id]}}
    change_balance = {
        "$inc": {"reserved": change["reserved"], "spent": change["spent"], "entries": 1},
        "$push": {"recent": {"$each": [event.event_id], "$slice": -RECENT_IDS}},
        "$set": {"updated_at": datetime.now(UTC)},
    }
    # `$nin`, not `$ne`: nx-27017 matches `$ne` against arrays wrongly; `$nin` is right on both servers.
    if not (await balances.update_one(guarded, change_balance)).matched_count:
        # Either the balance is new (create it, then apply) or this event was applied already (no-op).
        await balances.update_one(
            {"_id": key},
            {"$setOnInsert": {"account_id": event.account_id, "provider_id": event.provider_id,
                              "credit_type": event.credit_type, "reserved": 0, "spent": 0, "entries": 0,
                              "recent": []}},
            upsert=True,
        )
        await balances.update_one(guarded, change_balance)
    await ledger.update_one({"_id": event.event_id}, {"$set": {"applied": True}})
    return True
