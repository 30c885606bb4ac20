"""The pure rules: eligibility and ranking, reactions to provider errors, status moves, ledger deltas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pixsim_billing.ledger import deltas
from pixsim_contracts import CreditsCharged, CreditsGranted, CreditsReleased, CreditsReserved, CreditsSynced
from pixsim_dispatcher.health import cooldown, react
from pixsim_dispatcher.selection import assess, rank
from pixsim_provider_sdk import (
    AuthenticationError,
    ConcurrentLimitError,
    ContentFilteredError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
)
from pixsim_runtime.accounts import fold, new_account, status_change

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _account(account_id: str, **fields) -> dict:
    doc = new_account(
        account_id,
        provider_id="acct",
        email=None,
        credentials="",
        priority=0,
        concurrency_limit=2,
        now=NOW - timedelta(hours=1),
    )
    return {**doc, **fields}


def _lease(seconds: float, **credits: int) -> dict:
    return {"token": "t", "expires_at": (NOW + timedelta(seconds=seconds)).timestamp(), "credits": credits}


def test_eligibility_says_whether_to_wait_or_give_up():
    assert assess(_account("a"), {"sim": 5}, NOW).kind == "ok"  # an unknown balance does not block
    poor = _account("p", tracked=["sim"], available={"sim": 4})
    assert assess(poor, {"sim": 5}, NOW).kind == "never"
    assert assess(poor, {"premium": 5}, NOW).kind == "ok"
    held = _account("h", tracked=["sim"], available={"sim": 4}, leases={"g": _lease(60, sim=3)})
    assert assess(held, {"sim": 5}, NOW).kind == "wait"  # 3 come back when the running job settles
    full = _account("f", leases={"g1": _lease(60), "g2": _lease(60)})
    assert assess(full, {}, NOW).kind == "wait"
    assert (
        assess({**full, "leases": {"g1": _lease(-1), "g2": _lease(60)}}, {}, NOW).kind == "ok"
    )  # one expired
    cooling = _account("c", status="cooling_down", cooldown_until=(NOW + timedelta(seconds=5)).timestamp())
    verdict = assess(cooling, {}, NOW)
    assert verdict.kind == "wait" and verdict.until == NOW + timedelta(seconds=5)
    assert assess(cooling, {}, NOW + timedelta(seconds=6)).kind == "ok"
    for status in ("auth_failed", "exhausted"):
        assert assess(_account("x", status=status), {}, NOW).kind == "never"
    assert assess(_account("d", enabled=0), {}, NOW).kind == "never"  # a stored bool may come back as 0


def test_ranking_is_priority_then_headroom_then_least_recently_used():
    old, recent = (NOW - timedelta(minutes=5)).timestamp(), NOW.timestamp()
    docs = [
        _account("low-priority", priority=0, tracked=["sim"], available={"sim": 1000}),
        _account("rich", priority=5, tracked=["sim"], available={"sim": 100}, last_used_at=recent),
        _account("poorer", priority=5, tracked=["sim"], available={"sim": 50}, last_used_at=old),
        _account("unknown-recent", priority=5, last_used_at=recent),
        _account("unknown-old", priority=5, last_used_at=old),
        _account("unknown-busier", priority=5, last_used_at=None, leases={"g": _lease(60)}),
    ]
    order = [d["_id"] for d in rank(docs, {"sim": 10}, NOW)]
    assert order == ["unknown-old", "unknown-recent", "unknown-busier", "rich", "poorer", "low-priority"]


@pytest.mark.parametrize(
    ("error", "status", "rotate", "permanent"),
    [
        (AuthenticationError("x"), "auth_failed", True, True),
        (QuotaExceededError("x"), "exhausted", True, True),
        (RateLimitError("x", retry_after=7), "cooling_down", True, False),
        (ConcurrentLimitError("x"), "cooling_down", True, False),
        (ProviderUnavailableError("x"), None, False, False),
        (ContentFilteredError("x"), None, False, False),
    ],
)
def test_provider_errors_map_to_account_health(error, status, rotate, permanent):
    reaction = react(error, now=NOW, streak=0, base_s=2, max_s=300)
    assert (reaction.status, reaction.rotate, reaction.permanent) == (status, rotate, permanent)
    if isinstance(error, RateLimitError):
        assert reaction.cooldown_until == NOW + timedelta(seconds=7)  # Retry-After wins


def test_cooldowns_back_off_and_are_capped():
    assert [cooldown(n, 2, 30, None) for n in range(6)] == [2, 4, 8, 16, 30, 30]
    assert cooldown(3, 2, 30, 1.5) == 1.5 and cooldown(0, 2, 30, 999) == 30


def test_status_moves_follow_the_rules_and_fold_into_the_document():
    doc = _account("a")
    event = status_change(doc, "cooling_down", "rate limited", cooldown_until=NOW + timedelta(seconds=5))
    doc = fold(doc, event.model_copy(update={"occurred_at": NOW}))
    assert (
        doc["status"] == "cooling_down" and doc["cooldown_until"] == (NOW + timedelta(seconds=5)).timestamp()
    )
    assert status_change(doc, "cooling_down", "again", cooldown_until=NOW + timedelta(seconds=1)) is None
    disabled = fold(doc, status_change(doc, "disabled", "by a person"))
    assert status_change(disabled, "cooling_down", "x", cooldown_until=NOW) is None  # disabled wins
    assert status_change(disabled, "auth_failed", "x") is None
    assert status_change(disabled, "active", "enabled").status == "active"
    failed = fold(_account("b"), status_change(_account("b"), "auth_failed", "401"))
    assert status_change(failed, "exhausted", "x") is None and status_change(failed, "active", "new key")


def test_ledger_deltas_add_up():
    base = {"generation_id": "g", "provider_id": "acct", "account_id": "a", "credit_type": "sim"}
    grant = deltas(CreditsGranted(**{**base, "generation_id": None}, amount=10))
    reserve = deltas(CreditsReserved(**base, amount=5))
    charge = deltas(CreditsCharged(**base, amount=3, reserved=5))
    assert (grant["balance"], reserve["balance"], charge["balance"]) == (10, 0, -3)
    assert reserve["reserved"] + charge["reserved"] == 0 and charge["available"] == 2  # 5 held, 3 spent
    release = deltas(CreditsReleased(**base, amount=5, reason="failed"))
    assert (release["reserved"], release["available"]) == (-5, 5)
    synced = deltas(
        CreditsSynced(**{**base, "generation_id": None}, provider_balance=4), {"balance": 7, "reserved": 2}
    )
    assert synced["balance"] == synced["available"] == -1  # provider 4 vs ours 7 - 2 held
