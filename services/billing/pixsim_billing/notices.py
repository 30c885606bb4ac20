"""Account events that follow from balances: `account.credits_low`, `account.exhausted`, and the account's
status when its credits run out or come back.

Level-triggered and stored before published, so a crash or a redelivery never loses or repeats one:
each check compares the balance with the threshold and the balance document's `low_notified` /
`exhausted_notified` flags; a crossing flips the flag and appends the event to the balance's
`outbox` in the same atomic write (guarded by the flag), then the outbox is published and cleared.
The flag flips back when the balance rises above the line again, so the next crossing is announced too.
"""

from __future__ import annotations

from typing import Any

from faststream.nats import NatsBroker
from pixsim_contracts import AccountCreditsLow, AccountExhausted, Event
from pixsim_runtime import outbox
from pixsim_runtime.accounts import ACCOUNTS, set_status
from pymongo.asynchronous.database import AsyncDatabase

from .ledger import BALANCES, FUNDING


def _crossing(doc: dict[str, Any], flag: str, below: bool, event: Event) -> tuple[dict, dict] | None:
    """The guarded update that announces (or re-arms) one crossing, if there is one."""
    notified = bool(doc.get(flag))
    if below and not notified:
        # `$nin`, not `$ne`: nx-27017's updates never match `$ne` on a missing field.
        return (
            {"_id": doc["_id"], flag: {"$nin": [True]}},
            {"$set": {flag: True}, "$push": {outbox.OUTBOX: outbox.encode([event])[0]}},
        )
    if not below and notified:
        return {"_id": doc["_id"], flag: True}, {"$set": {flag: False}}
    return None


async def check(db: AsyncDatabase, broker: NatsBroker, balance_id: str, kind: str, threshold: int) -> None:
    """Announce what the balance's current level calls for, then adjust the account's status."""
    balances = db[BALANCES]
    doc = await balances.find_one({"_id": balance_id})
    if doc is None:
        return
    if doc.get("tracked"):
        balance = int(doc.get("balance", 0))
        seq = int(doc.get("entries", 0))  # the event ids name the entry that caused them
        base = {
            "account_id": doc["account_id"],
            "provider_id": doc["provider_id"],
            "credit_type": doc["credit_type"],
        }
        low = AccountCreditsLow(event_id=f"{balance_id}.low.{seq}", balance=balance, **base)
        exhausted = AccountExhausted(event_id=f"{balance_id}.exhausted.{seq}", **base)
        crossed = False
        for flag, below, event in (
            ("low_notified", balance <= threshold, low),
            ("exhausted_notified", balance <= 0, exhausted),
        ):
            step = _crossing(doc, flag, below, event)
            if step is not None:
                await balances.update_one(*step)
                crossed = True
        if crossed:  # the outbox to publish is the stored one (another delivery may have pushed too)
            doc = await balances.find_one({"_id": balance_id}) or doc
    await outbox.flush(balances, broker, doc)
    if doc.get("tracked"):
        await _status(db, broker, doc, kind)


async def _status(db: AsyncDatabase, broker: NatsBroker, doc: dict[str, Any], kind: str) -> None:
    """Exhausted when every known balance of the account is spent; active again when credits arrive."""
    account_id = doc["account_id"]
    if doc.get("balance", 0) <= 0:
        known = await db[BALANCES].find({"account_id": account_id, "tracked": True}).to_list()
        if known and all(b.get("balance", 0) <= 0 for b in known):
            spent = ", ".join(f"{b['credit_type']}={b.get('balance', 0)}" for b in known)
            await set_status(db, broker, account_id, "exhausted", f"no credits left ({spent})")
    elif kind in FUNDING:  # only new credits revive an account, never a routine charge or release
        account = await db[ACCOUNTS].find_one({"_id": account_id}, {"status": 1})
        if account and account.get("status") == "exhausted":
            await set_status(
                db,
                broker,
                account_id,
                "active",
                f"credits available again ({doc['credit_type']}={doc['balance']})",
            )
