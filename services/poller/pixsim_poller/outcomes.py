"""Pure decisions: the events that end a generation, with their credit events. No I/O here.

Event ids derive from the generation id, so a decision re-published after a crash is a duplicate
that JetStream drops, and billing can never book it twice.
"""

from __future__ import annotations

from pixsim_contracts import (
    CreditsCharged,
    CreditsReleased,
    ErrorInfo,
    Event,
    GenerationCancelled,
    GenerationCompleted,
    GenerationFailed,
    GenerationFiltered,
    GenerationSubmitted,
)


def _credit_base(job: GenerationSubmitted, credit_type: str) -> dict:
    return {
        "generation_id": job.generation_id,
        "provider_id": job.provider_id,
        "account_id": job.account_id,
        "credit_type": credit_type,
    }


def charge(job: GenerationSubmitted, actual: dict[str, int]) -> list[Event]:
    """Book the actual cost of each credit type, settling its reservation."""
    types = sorted(set(actual) | set(job.credits_reserved))
    return [
        CreditsCharged(
            event_id=f"{job.generation_id}.charged.{ct}",
            **_credit_base(job, ct),
            amount=actual.get(ct, 0),
            reserved=job.credits_reserved.get(ct, 0),
        )
        for ct in types
    ]


def release(job: GenerationSubmitted, reason: str) -> list[Event]:
    return [
        CreditsReleased(
            event_id=f"{job.generation_id}.released.{ct}",
            **_credit_base(job, ct),
            amount=amount,
            reason=reason,
        )
        for ct, amount in sorted(job.credits_reserved.items())
    ]


def completed(job: GenerationSubmitted, result: dict, actual: dict[str, int]) -> list[Event]:
    done = GenerationCompleted(
        event_id=f"{job.generation_id}.completed",
        generation_id=job.generation_id,
        provider_id=job.provider_id,
        account_id=job.account_id,
        result=result,
        credits_charged=actual,
    )
    return [*charge(job, actual), done]


def failed(job: GenerationSubmitted, error: ErrorInfo) -> list[Event]:
    end = GenerationFailed(
        event_id=f"{job.generation_id}.failed",
        generation_id=job.generation_id,
        provider_id=job.provider_id,
        account_id=job.account_id,
        error=error,
    )
    return [*release(job, error.code), end]


def filtered(job: GenerationSubmitted, error: ErrorInfo, charged: dict[str, int] | None) -> list[Event]:
    """Released, unless the provider charges for filtered jobs (then `charged` is the cost)."""
    credits = charge(job, charged) if charged is not None else release(job, error.code)
    end = GenerationFiltered(
        event_id=f"{job.generation_id}.filtered",
        generation_id=job.generation_id,
        provider_id=job.provider_id,
        account_id=job.account_id,
        error=error,
    )
    return [*credits, end]


def cancelled(job: GenerationSubmitted) -> list[Event]:
    end = GenerationCancelled(
        event_id=f"{job.generation_id}.cancelled",
        generation_id=job.generation_id,
        provider_id=job.provider_id,
        account_id=job.account_id,
    )
    return [*release(job, "cancelled"), end]
