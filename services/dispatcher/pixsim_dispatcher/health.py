"""What a submit error says about the account, and what the job does next. Pure: no I/O.

| error | account becomes | the job |
|---|---|---|
| AuthenticationError | `auth_failed` | moves to another account (a pinned job fails) |
| QuotaExceededError | `exhausted` | moves to another account (a pinned job fails) |
| RateLimitError | `cooling_down` for Retry-After, else a backoff | another account, or waits for this one |
| ConcurrentLimitError | `cooling_down` for a backoff | another account, or waits for this one |
| any other retryable error | unchanged | retried later with backoff |
| any other error | unchanged | fails with the error's code |

All of these errors mean the provider refused the job, so trying it again cannot run it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pixsim_provider_sdk import (
    AuthenticationError,
    ConcurrentLimitError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
)
from pixsim_runtime.backoff import backoff


@dataclass(frozen=True)
class Reaction:
    status: str | None = None  # the account's new status, if the error says something about it
    cooldown_until: datetime | None = None
    rotate: bool = False  # try the job on another account (or wait for this one)
    permanent: bool = False  # the account cannot take jobs until a person or new credits fix it


def cooldown(streak: int, base_s: float, max_s: float, retry_after: float | None) -> float:
    """Seconds to rest: what the provider asked for, else doubling with each cooldown in a row."""
    if retry_after is not None and retry_after > 0:
        return min(retry_after, max_s)
    return backoff(streak, base_s, max_s)


def react(exc: ProviderError, *, now: datetime, streak: int, base_s: float, max_s: float) -> Reaction:
    if isinstance(exc, AuthenticationError):
        return Reaction(status="auth_failed", rotate=True, permanent=True)
    if isinstance(exc, QuotaExceededError):
        return Reaction(status="exhausted", rotate=True, permanent=True)
    if isinstance(exc, RateLimitError | ConcurrentLimitError):
        retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
        rest = cooldown(streak, base_s, max_s, retry_after)
        return Reaction(status="cooling_down", cooldown_until=now + timedelta(seconds=rest), rotate=True)
    return Reaction()


def describe(exc: ProviderError) -> str:
    """The account event's reason: what the provider said (adapters keep credentials out of it)."""
    kind = {
        "provider_auth": "credentials rejected",
        "provider_quota": "provider reports no credits left",
        "provider_rate_limit": "rate limited",
        "provider_concurrent_limit": "too many jobs at once",
    }
    return f"{kind.get(exc.error_code, exc.error_code)}: {exc.message}"
