"""Provider accounts: an event-sourced aggregate in the collection `accounts`, and how services read it.

Every change to an account's own state (created, updated, status changed) is an account event.
`record()` folds new events into the document and appends them to its `outbox` in ONE write that is
conditional on `version` (optimistic concurrency), then publishes them and clears the outbox. A crash
in between leaves them in the outbox: the next `record()` or `flush_outbox()` publishes them again
under the same ids (`<account_id>.v<version>`), and JetStream drops the duplicate.

Operational fields live beside the aggregate and change by single atomic updates, never by events:
`leases` / `slots_used` / `last_used_at` / `cooldown_streak` (dispatcher), `available` / `tracked` /
`billed` (billing). Credentials are stored encrypted (`pixsim_runtime.secrets`) and decrypted
into a `ProviderAccount` only right before a provider call.

Times that are ever `$set` are stored as epoch seconds (floats), and outbox entries as JSON strings
(`pixsim_runtime.outbox`): nx-27017, the local MongoDB wire server, stores a `$set` datetime as a naive
string and a `$push`ed document as a JSON string, while floats and strings round-trip on every server.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from faststream.nats import NatsBroker
from pixsim_contracts import (
    AccountCreated,
    AccountStatusChanged,
    AccountUpdated,
    Event,
    ProviderManifest,
)
from pixsim_provider_sdk import ProviderAccount
from pymongo.asynchronous.database import AsyncDatabase

from . import outbox
from .secrets import CredentialCipher

ACCOUNTS = "accounts"
STATUSES = ("active", "cooling_down", "exhausted", "auth_failed", "disabled")
#: Which status may follow which. `disabled` is left only by enabling the account again, `auth_failed`
#: only by new credentials or enabling, `exhausted` only by new credits (or enabling).
TRANSITIONS = {
    "active": {"cooling_down", "exhausted", "auth_failed", "disabled"},
    "cooling_down": {"active", "cooling_down", "exhausted", "auth_failed", "disabled"},
    "exhausted": {"active", "auth_failed", "disabled"},
    "auth_failed": {"active", "disabled"},
    "disabled": {"active"},
}
#: The fields events own; everything else in the document is operational.
AGGREGATE_FIELDS = (
    "provider_id",
    "owner_id",
    "shared",
    "email",
    "credentials",
    "enabled",
    "priority",
    "concurrency_limit",
    "status",
    "status_reason",
    "status_code",
    "status_since",
    "cooldown_until",
    "created_at",
    "updated_at",
)
MAX_CONFLICTS = 50


def ts(when: datetime | None) -> float | None:
    """A time as stored in an account document (epoch seconds)."""
    return when.timestamp() if when is not None else None


def from_ts(value: float | datetime | None) -> datetime | None:
    """A stored time back as an aware datetime (documents written before this rule may hold datetimes)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(value, UTC)


def system_account_id(provider_id: str) -> str:
    return f"system-{provider_id}"


def is_system_account(account_id: str) -> bool:
    return account_id.startswith("system-")


def system_account(manifest: ProviderManifest) -> ProviderAccount:
    """The built-in account of a provider that needs no credentials."""
    return ProviderAccount(id=system_account_id(manifest.id), provider_id=manifest.id, is_system=True)


def to_provider_account(doc: dict[str, Any], cipher: CredentialCipher) -> ProviderAccount:
    return ProviderAccount(
        id=doc["_id"],
        provider_id=doc["provider_id"],
        email=doc.get("email"),
        credentials=cipher.decrypt(doc["credentials"]) if doc.get("credentials") else {},
    )


def may_run_jobs_of(doc: dict[str, Any], user_id: str | None) -> bool:
    """Whether this account may run a job of `user_id`: its owner's jobs, or anyone's if it is shared."""
    return bool(doc.get("shared")) or (user_id is not None and doc.get("owner_id") == user_id)


async def load_account(
    db: AsyncDatabase, manifest: ProviderManifest, account_id: str, cipher: CredentialCipher
) -> ProviderAccount | None:
    """The account a job runs or ran on, or None if it no longer exists."""
    if account_id == system_account_id(manifest.id):
        return system_account(manifest)
    doc = await db[ACCOUNTS].find_one({"_id": account_id, "provider_id": manifest.id})
    return to_provider_account(doc, cipher) if doc else None


# -- the aggregate ----------------------------------------------------------------------------------
def new_account(
    account_id: str,
    *,
    provider_id: str,
    email: str | None,
    credentials: str,
    priority: int,
    concurrency_limit: int,
    now: datetime,
    owner_id: str | None = None,
    shared: bool = False,
) -> dict[str, Any]:
    """A new account document (version 0: `AccountCreated` is folded in by the caller)."""
    return {
        "_id": account_id,
        "provider_id": provider_id,
        "owner_id": owner_id,
        "shared": shared,
        "email": email,
        "credentials": credentials,
        "enabled": True,
        "priority": priority,
        "concurrency_limit": concurrency_limit,
        "status": "active",
        "status_reason": "created",
        "status_code": None,
        "status_since": ts(now),
        "cooldown_until": None,
        "created_at": now,
        "updated_at": ts(now),
        "last_used_at": None,
        "version": 0,
        "outbox": [],
        "leases": {},
        "slots_used": 0,
        "available": {},
        "tracked": [],
        "cooldown_streak": 0,
    }


def fold(doc: dict[str, Any], event: Event) -> dict[str, Any]:
    """The document after one account event (pure). Folding an account's events from `{"_id": id}`
    rebuilds every aggregate field except `credentials`, which no event carries."""
    doc = dict(doc)
    match event:
        case AccountCreated():
            doc.update(
                provider_id=event.provider_id,
                owner_id=event.owner_id,
                shared=event.shared,
                email=event.email,
                created_at=event.occurred_at,
                priority=event.priority,
                concurrency_limit=event.concurrency_limit,
                enabled=True,
                status="active",
                status_reason="created",
                status_since=ts(event.occurred_at),
            )
        case AccountUpdated():
            doc.update(
                {k: v for k, v in event.changes.items() if k in AGGREGATE_FIELDS and k != "credentials"}
            )
        case AccountStatusChanged():
            doc.update(
                status=event.status,
                status_reason=event.reason,
                status_code=event.error_code,
                status_since=ts(event.occurred_at),
                cooldown_until=ts(event.cooldown_until),
            )
        case _:  # billing's announcements (credits_low, exhausted) and deletion change no field
            return doc
    doc["updated_at"] = ts(event.occurred_at)
    return doc


def status_change(
    doc: dict[str, Any],
    status: str,
    reason: str,
    *,
    error_code: str | None = None,
    cooldown_until: datetime | None = None,
    generation_id: str | None = None,
) -> AccountStatusChanged | None:
    """The event that moves the account to `status`, or None when that move is not allowed now
    (a disabled account is not put in cooldown) or changes nothing (a shorter cooldown)."""
    current = doc.get("status", "active")
    if status not in TRANSITIONS.get(current, set()):
        return None
    if (
        status == current == "cooling_down"
        and cooldown_until
        and doc.get("cooldown_until")
        and ts(cooldown_until) <= doc["cooldown_until"]
    ):
        return None
    return AccountStatusChanged(
        account_id=doc["_id"],
        provider_id=doc["provider_id"],
        status=status,
        previous_status=current,
        reason=reason,
        error_code=error_code,
        cooldown_until=cooldown_until if status == "cooling_down" else None,
        generation_id=generation_id,
    )


Decide = Callable[[dict[str, Any]], list[Event]]


async def record(
    db: AsyncDatabase, broker: NatsBroker, account_id: str, decide: Decide, also: dict[str, Any] | None = None
) -> list[Event]:
    """Append the events `decide(current document)` returns, then publish them.

    `decide` sees the latest document and may return nothing. `also` is an extra operational
    update (e.g. `{"$inc": {"cooldown_streak": 1}}`) made in the same atomic write.
    """
    accounts = db[ACCOUNTS]
    for _ in range(MAX_CONFLICTS):
        doc = await accounts.find_one({"_id": account_id})
        if doc is None:
            return []
        events = decide(doc)
        if not events:
            await flush_outbox(db, broker, doc)
            return []
        version = doc.get("version", 0)
        stamped: list[Event] = []
        after = doc
        for offset, event in enumerate(events, 1):
            event = event.model_copy(update={"event_id": f"{account_id}.v{version + offset}"})
            after = fold(after, event)
            stamped.append(event)
        changes = {k: after.get(k) for k in AGGREGATE_FIELDS if after.get(k) != doc.get(k)}
        dumped = outbox.encode(stamped)
        update: dict[str, Any] = {op: dict(fields) for op, fields in (also or {}).items()}
        update.setdefault("$set", {}).update({**changes, "version": version + len(stamped)})
        update.setdefault("$push", {})["outbox"] = {"$each": dumped}
        guard = {"version": version} if "version" in doc else {"version": {"$exists": False}}
        if (await accounts.update_one({"_id": account_id, **guard}, update)).matched_count:
            await flush_outbox(db, broker, {**doc, "outbox": [*(doc.get("outbox") or []), *dumped]})
            return stamped
    raise RuntimeError(f"account {account_id} changed too often to record an event")


async def flush_outbox(db: AsyncDatabase, broker: NatsBroker, doc: dict[str, Any]) -> None:
    """Publish the account's pending events in order, each then removed from the outbox."""
    await outbox.flush(db[ACCOUNTS], broker, doc)


async def set_status(
    db: AsyncDatabase, broker: NatsBroker, account_id: str, status: str, reason: str, **kwargs: Any
) -> AccountStatusChanged | None:
    """Move the account to `status` if that is allowed now; returns the event, or None."""
    also = kwargs.pop("also", None)

    def decide(doc: dict[str, Any]) -> list[Event]:
        event = status_change(doc, status, reason, **kwargs)
        return [event] if event else []

    events = await record(db, broker, account_id, decide, also)
    return events[0] if events else None  # type: ignore[return-value]
