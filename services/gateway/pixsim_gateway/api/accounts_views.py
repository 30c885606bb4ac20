"""What the account API shows: an allow-list of fields, balances joined from billing, the ledger by page.

Nothing here reads `credentials`: a response is built only from the fields named below, so a secret
cannot reach a client even if a document holds one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pixsim_runtime.accounts import from_ts
from pymongo.asynchronous.database import AsyncDatabase

from . import cursors
from .generations import jsonable

PUBLIC_FIELDS = (
    "provider_id",
    "owner_id",
    "shared",
    "email",
    "status",
    "status_reason",
    "status_code",
    "status_since",
    "cooldown_until",
    "enabled",
    "priority",
    "concurrency_limit",
    "created_at",
    "updated_at",
    "last_used_at",
)
TIME_FIELDS = ("status_since", "cooldown_until", "updated_at", "last_used_at")  # stored as epoch seconds
LEDGER_FIELDS = ("kind", "credit_type", "amount", "generation_id", "reason", "occurred_at", "booked_at")


def balances_of(doc: dict[str, Any], balance_docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per credit type: balance, reserved (booked holds of running jobs), available (balance minus every
    open hold, what selection checks), spent, and whether the balance is known at all."""
    tracked = set(doc.get("tracked") or [])
    available = doc.get("available") or {}
    out: dict[str, dict[str, Any]] = {}
    for b in sorted(balance_docs, key=lambda b: b["credit_type"]):
        known = b["credit_type"] in tracked or bool(b.get("tracked"))
        out[b["credit_type"]] = {
            "balance": b.get("balance", 0) if known else None,
            "reserved": b.get("reserved", 0),
            "available": available.get(b["credit_type"], 0) if known else None,
            "spent": b.get("spent", 0),
            "tracked": bool(known),
        }
    for credit_type in sorted(tracked - set(out)):  # granted, not booked yet: the dispatcher's figure
        out[credit_type] = {
            "balance": None,
            "reserved": 0,
            "available": available.get(credit_type, 0),
            "spent": 0,
            "tracked": True,
        }
    return out


def public(doc: dict[str, Any], balance_docs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    now = datetime.now(UTC).timestamp()
    leases = {gid: lease for gid, lease in (doc.get("leases") or {}).items() if lease["expires_at"] > now}
    view = {
        "id": doc["_id"],
        **{k: doc.get(k) for k in PUBLIC_FIELDS},
        "slots_in_use": len(leases),
        "running_jobs": sorted(leases),
        "balances": balances_of(doc, balance_docs or []),
    }
    view["enabled"] = bool(view["enabled"])  # some servers hand a stored bool back as 0/1
    view["shared"] = bool(view["shared"])
    for field in TIME_FIELDS:
        view[field] = from_ts(view[field])
    return jsonable(view)


async def account_view(db: AsyncDatabase, doc: dict[str, Any]) -> dict[str, Any]:
    return public(doc, await db["balances"].find({"account_id": doc["_id"]}).to_list())


async def accounts_view(db: AsyncDatabase, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [d["_id"] for d in docs]
    by_account: dict[str, list[dict[str, Any]]] = {}
    for b in await db["balances"].find({"account_id": {"$in": ids}}).to_list() if ids else []:
        by_account.setdefault(b["account_id"], []).append(b)
    return [public(d, by_account.get(d["_id"], [])) for d in docs]


def ledger_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return jsonable(
        {
            "id": entry["_id"],
            **{k: entry.get(k) for k in LEDGER_FIELDS},
            "balance_change": entry.get("delta_balance", -entry.get("delta_spent", 0)),
            "reserved_change": entry.get("delta_reserved", 0),
        }
    )


async def ledger_page(
    db: AsyncDatabase, account_id: str, limit: int, cursor: str | None, credit_type: str | None
) -> dict[str, Any]:
    """Booked entries, newest first; `next_cursor` continues after the last one."""
    query: dict[str, Any] = {"account_id": account_id, "applied": True}
    if credit_type:
        query["credit_type"] = credit_type
    if cursor:
        query["sort_key"] = {"$lt": cursors.decode("ledger", cursor, str)}
    docs = await db["ledger"].find(query).sort("sort_key", -1).limit(limit + 1).to_list()
    page = docs[:limit]
    more = len(docs) > limit and page
    return {
        "items": [ledger_entry(e) for e in page],
        "next_cursor": cursors.encode("ledger", page[-1]["sort_key"]) if more else None,
    }
