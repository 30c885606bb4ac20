"""Which account runs a job: eligibility and ranking, as pure functions over account documents.

The policy (documented in the README):

1. **Eligible**: the account belongs to the job's provider, is enabled, its status is `active` (or
   `cooling_down` with the cooldown over), it has a free concurrency slot, and for every credit type
   the job's estimate needs whose balance is known (`tracked`), its *available* balance (balance minus
   open holds of running jobs) is at least the estimate. A balance nobody told us about (no opening
   credits, no sync yet) is not a reason to refuse a job.
2. **Ranked** by priority (higher first), then headroom: the smallest available balance left after
   this job across the credit types it needs (unknown balances count as unlimited), then free slots;
   then least recently used first.

An ineligible account is either worth waiting for (`wait`: full, cooling down, credits held by
running jobs) or not (`never`: disabled, credentials rejected, exhausted, or not enough credits even
when every running job has settled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pixsim_runtime.accounts import from_ts

#: Status of an account that can never take a job until a person or new credits change it.
BLOCKING = {
    "disabled": "is disabled",
    "auth_failed": "has rejected credentials",
    "exhausted": "has no credits left",
}


@dataclass(frozen=True)
class Verdict:
    kind: Literal["ok", "wait", "never"]
    reason: str = ""
    until: datetime | None = None  # when a `wait` should end at the latest, if known


def live_leases(doc: dict[str, Any], now: datetime) -> dict[str, dict[str, Any]]:
    """The leases whose holder may still be working (times in account documents are epoch seconds)."""
    return {
        gid: lease
        for gid, lease in (doc.get("leases") or {}).items()
        if lease["expires_at"] > now.timestamp()
    }


def free_slots(doc: dict[str, Any], now: datetime) -> int:
    return int(doc.get("concurrency_limit") or 1) - len(live_leases(doc, now))


def cooldown_over(doc: dict[str, Any], now: datetime) -> bool:
    until = doc.get("cooldown_until")
    return doc.get("status") == "cooling_down" and (until is None or until <= now.timestamp())


def assess(doc: dict[str, Any], estimate: dict[str, int], now: datetime) -> Verdict:
    """Whether this account could take a job with this estimate now."""
    status = doc.get("status", "active")
    name = f"account {doc['_id']}"
    if not doc.get("enabled", True):
        return Verdict("never", f"{name} is disabled")
    if status in BLOCKING:
        return Verdict("never", f"{name} {BLOCKING[status]} ({doc.get('status_reason') or status})")
    if status == "cooling_down" and not cooldown_over(doc, now):
        return Verdict(
            "wait", f"{name} is cooling down ({doc.get('status_reason')})", from_ts(doc["cooldown_until"])
        )
    if free_slots(doc, now) <= 0:
        return Verdict("wait", f"{name} has no free slot ({doc.get('concurrency_limit')} in use)")
    tracked = set(doc.get("tracked") or [])
    available = doc.get("available") or {}
    for credit_type, needed in sorted(estimate.items()):
        if credit_type not in tracked or available.get(credit_type, 0) >= needed:
            continue
        held = sum(
            (lease.get("credits") or {}).get(credit_type, 0) for lease in (doc.get("leases") or {}).values()
        )
        shortfall = f"{name} has {available.get(credit_type, 0)} {credit_type} credits available, the job needs {needed}"
        if held and available.get(credit_type, 0) + held >= needed:
            return Verdict("wait", f"{shortfall} ({held} held by running jobs)")
        return Verdict("never", shortfall)
    return Verdict("ok")


def headroom(doc: dict[str, Any], estimate: dict[str, int]) -> float:
    """Credits left after this job in the tightest credit type it needs; unknown balances are unlimited."""
    tracked = set(doc.get("tracked") or [])
    available = doc.get("available") or {}
    left = [available.get(ct, 0) - n for ct, n in estimate.items() if ct in tracked]
    return min(left) if left else math.inf


def rank(docs: list[dict[str, Any]], estimate: dict[str, int], now: datetime) -> list[dict[str, Any]]:
    """Best first: priority, then headroom (credits, then free slots), then least recently used."""

    def key(doc: dict[str, Any]) -> tuple:
        last = doc.get("last_used_at")
        return (
            -int(doc.get("priority") or 0),
            -headroom(doc, estimate),
            -free_slots(doc, now),
            last if last is not None else -math.inf,
            doc["_id"],
        )

    return sorted(docs, key=key)
