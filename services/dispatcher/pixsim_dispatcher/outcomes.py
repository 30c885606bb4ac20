"""Pure decisions: which events a dispatch produces. No I/O here."""

from __future__ import annotations

from datetime import datetime, timedelta

from pixsim_contracts import (
    CreditsReserved,
    ErrorInfo,
    Event,
    GenerationFailed,
    GenerationFiltered,
    GenerationRequested,
    GenerationSubmitted,
)
from pixsim_provider_sdk import ContentFilteredError, GenerationResult, ProviderError


def submitted_events(
    request: GenerationRequested,
    account_id: str,
    result: GenerationResult,
    estimate: dict[str, int],
    now: datetime,
    timeout_s: float,
    params: dict | None = None,
) -> list[Event]:
    """Reserve the estimate, then announce the submission. Event ids derive from the generation id,
    so re-publishing after a crash is dropped as a duplicate."""
    gid = request.generation_id
    reserved: list[Event] = [
        CreditsReserved(
            event_id=f"{gid}.reserved.{credit_type}",
            generation_id=gid,
            provider_id=request.provider_id,
            account_id=account_id,
            credit_type=credit_type,
            amount=amount,
        )
        for credit_type, amount in estimate.items()
    ]
    submitted = GenerationSubmitted(
        event_id=f"{gid}.submitted",
        generation_id=gid,
        provider_id=request.provider_id,
        operation_type=request.operation_type,
        account_id=account_id,
        provider_job_id=result.provider_job_id,
        credits_reserved=estimate,
        deadline_at=now + timedelta(seconds=timeout_s),
        user_id=request.user_id,
        params=request.params if params is None else params,
    )
    return [*reserved, submitted]


def rejected_event(request: GenerationRequested, error: ErrorInfo, account_id: str | None = None) -> Event:
    """The job ends before it reached the provider (or the provider refused it)."""
    kind = GenerationFiltered if error.code.startswith("content_") else GenerationFailed
    suffix = "filtered" if kind is GenerationFiltered else "failed"
    return kind(
        event_id=f"{request.generation_id}.{suffix}",
        generation_id=request.generation_id,
        provider_id=request.provider_id,
        account_id=account_id,
        error=error,
    )


def error_info(exc: ProviderError) -> ErrorInfo:
    code = exc.error_code
    if isinstance(exc, ContentFilteredError) and not code.startswith("content_"):
        code = f"content_{code}"
    return ErrorInfo(code=code, message=exc.message, retryable=exc.retryable)
