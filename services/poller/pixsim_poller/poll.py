"""Polling one submitted job, uniformly for every provider.

The `generation.submitted` message itself is the schedule: after each poll that is not terminal the
handler asks JetStream to redeliver it later (`PollAgain`), with a growing interval. So a poller that
dies loses nothing: its unacked messages come back to any replica. What a poll has already announced
(last progress, the final outcome) lives in `polls`, keyed by the generation id, so events are only
emitted when something changed, and the final decision is recorded before it is published.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pixsim_contracts import (
    AnyEvent,
    ErrorInfo,
    Event,
    GenerationCancelRequested,
    GenerationProgressed,
    GenerationSubmitted,
    ProviderStatus,
)
from pixsim_provider_sdk import (
    AuthenticationError,
    GenerationContext,
    ProviderError,
    ProviderNotFoundError,
    ProviderStatusResult,
    ProviderUnreachableError,
    RateLimitError,
)
from pixsim_runtime.accounts import load_account, set_status
from pixsim_runtime.broker import publish_event
from pixsim_runtime.consumers import PollAgain
from pixsim_runtime.secrets import CredentialCipher, scrub
from pixsim_runtime.service import ServiceContext

from . import outcomes
from .schedule import next_delay
from .settings import PollerSettings

log = logging.getLogger(__name__)

POLLS = "polls"


class Poller:
    def __init__(self, ctx: ServiceContext, settings: PollerSettings, cipher: CredentialCipher) -> None:
        self.ctx = ctx
        self.settings = settings
        self.cipher = cipher
        self.polls = ctx.db[POLLS]

    async def on_cancel_requested(self, event: GenerationCancelRequested, _msg: Any) -> None:
        # Recorded, not acted on here: the job's next poll cancels it (whichever replica holds it),
        # and a cancel that arrives before the submission is honoured by the first poll.
        await self.polls.update_one({"_id": event.generation_id}, {"$set": {"cancel_requested": True}}, upsert=True)

    async def on_submitted(self, job: GenerationSubmitted, msg: Any) -> None:
        state = await self.polls.find_one({"_id": job.generation_id}) or {}
        if state.get("outbox") is not None:
            await self._publish([AnyEvent.validate_python(e) for e in state["outbox"]])
            return
        events = await self._poll_once(job, state)
        if events is None:
            polls = msg.raw_message.metadata.num_delivered or 1
            s = self.settings
            raise PollAgain(next_delay(polls, s.poll_min_interval, s.poll_backoff, s.poll_max_interval))
        await self.polls.update_one({"_id": job.generation_id},
                                    {"$set": {"outbox": [e.model_dump(mode="json") for e in events],
                                              "ended_at": datetime.now(UTC)}}, upsert=True)
        await self._publish(events)

    async def _poll_once(self, job: GenerationSubmitted, state: dict[str, Any]) -> list[Event] | None:
        """The events that end the job, or None to poll again later."""
        try:
            provider = self.ctx.registry.get(job.provider_id)
        except ProviderNotFoundError as exc:
            return outcomes.failed(job, ErrorInfo(code="provider_not_found", message=str(exc)))
        account = await load_account(self.ctx.db, provider.manifest, job.account_id, self.cipher)
        if account is None:
            return outcomes.failed(job, ErrorInfo(code="account_not_found",
                                                  message=f"account {job.account_id} no longer exists"))
        if state.get("cancel_requested"):
            await self._try_cancel(provider, account, job)
            return outcomes.cancelled(job)
        # The deadline is judged only after asking once more: a job first polled late may be long finished.
        try:
            status = await provider.check_status(account, job.provider_job_id, job.operation_type)
        except ProviderError as exc:
            message = scrub(exc.message, account.credentials)
            if exc.retryable:
                return await self._bad_poll(provider, account, job, state, exc.error_code, message,
                                            counts=not isinstance(exc, (ProviderUnreachableError, RateLimitError)))
            if isinstance(exc, AuthenticationError) and not account.is_system:
                # The account's credentials stopped working: no new job should be sent to it either.
                await set_status(self.ctx.db, self.ctx.broker, account.id, "auth_failed",
                                 f"credentials rejected while polling: {message}", error_code=exc.error_code,
                                 generation_id=job.generation_id)
            return outcomes.failed(job, ErrorInfo(code=exc.error_code, message=message))
        except Exception as exc:  # noqa: BLE001 - an adapter that cannot read the answer: a bad answer too
            message = scrub(f"{type(exc).__name__}: {exc}", account.credentials)
            log.error("provider %s: check_status of %s raised %s", job.provider_id, job.generation_id, message)
            return await self._bad_poll(provider, account, job, state, "provider_bad_response", message, counts=True)
        if state.get("bad_polls"):
            await self.polls.update_one({"_id": job.generation_id}, {"$set": {"bad_polls": 0}})
            state["bad_polls"] = 0
        events = await self._decide(provider, job, state, status)
        if events is None and self._past_deadline(job):
            return await self._time_out(provider, account, job, "")
        return events

    @staticmethod
    def _past_deadline(job: GenerationSubmitted) -> bool:
        return datetime.now(UTC) > job.deadline_at

    async def _time_out(self, provider, account, job: GenerationSubmitted, detail: str) -> list[Event]:
        await self._try_cancel(provider, account, job)
        message = f"no result before the deadline {job.deadline_at.isoformat()}{detail}"
        return outcomes.failed(job, ErrorInfo(code="provider_timeout", message=message))

    async def _bad_poll(self, provider, account, job: GenerationSubmitted, state: dict[str, Any], code: str,
                        message: str, *, counts: bool) -> list[Event] | None:
        """A poll without a usable answer. Unusable answers in a row end the job with their own code; a
        provider that cannot be reached (or asks us to slow down) is waited for until the deadline."""
        if counts:
            bad = int(state.get("bad_polls") or 0) + 1
            await self.polls.update_one({"_id": job.generation_id}, {"$set": {"bad_polls": bad}}, upsert=True)
            state["bad_polls"] = bad
            if bad >= self.settings.max_bad_polls:
                log.error("poll of %s: %d bad answers in a row (%s); failing it", job.generation_id, bad, code)
                return outcomes.failed(job, ErrorInfo(
                    code=code, message=f"{bad} bad answers in a row while polling; the last: {message}"))
        if self._past_deadline(job):
            return await self._time_out(provider, account, job, f"; the last poll failed: {code}: {message}")
        log.warning("poll of %s failed (%s); will poll again", job.generation_id, code)
        return None

    async def _decide(self, provider, job: GenerationSubmitted, state: dict[str, Any],
                      status: ProviderStatusResult) -> list[Event] | None:
        if status.status in (ProviderStatus.PENDING, ProviderStatus.PROCESSING):
            await self._report_progress(job, state, status)
            return None
        error = ErrorInfo(code=status.error_code or status.status.value, message=status.error_message or "")
        if status.status is ProviderStatus.COMPLETED:
            # Finished means finished: whatever a hook does now, the job completes with its result.
            return outcomes.completed(job, status.result_urls(), self._actual_credits(provider, job, status))
        if status.status is ProviderStatus.FILTERED:
            if not error.code.startswith("content_"):
                error = ErrorInfo(code="content_filtered", message=error.message)
            try:
                charges = provider.charges_filtered_jobs()
            except Exception as exc:  # noqa: BLE001 - as below: the estimate, never a lost outcome
                log.error("provider %s: hook charges_filtered_jobs failed for %s (%s: %s); charging the estimate",
                          job.provider_id, job.generation_id, type(exc).__name__, exc)
                return outcomes.filtered(job, error, dict(job.credits_reserved))
            return outcomes.filtered(job, error, self._actual_credits(provider, job, status) if charges else None)
        if status.status is ProviderStatus.CANCELLED:
            return outcomes.cancelled(job)
        return outcomes.failed(job, error)

    def _actual_credits(self, provider, job: GenerationSubmitted, status: ProviderStatusResult) -> dict[str, int]:
        estimate = dict(job.credits_reserved)
        try:
            actual = provider.compute_actual_credits(self._context(job), status, dict(estimate))
            return {str(ct): int(n) for ct, n in (actual or {}).items()}
        except Exception as exc:  # noqa: BLE001 - an adapter bug must not lose a finished result
            log.error("provider %s: hook compute_actual_credits failed for %s (%s: %s); charging the estimate %s",
                      job.provider_id, job.generation_id, type(exc).__name__, exc, estimate)
            return estimate

    async def _report_progress(self, job: GenerationSubmitted, state: dict[str, Any],
                               status: ProviderStatusResult) -> None:
        if status.progress is None:
            return
        progress = round(min(max(status.progress, 0.0), 1.0), 2)
        if progress <= state.get("progress", -1.0):
            return  # nothing changed: no event
        event = GenerationProgressed(event_id=f"{job.generation_id}.progressed.{int(progress * 100)}",
                                     generation_id=job.generation_id, progress=progress)
        await publish_event(self.ctx.broker, event)
        await self.polls.update_one({"_id": job.generation_id}, {"$max": {"progress": progress}}, upsert=True)
        state["progress"] = progress

    async def _try_cancel(self, provider, account, job: GenerationSubmitted) -> None:
        try:
            await provider.cancel(account, job.provider_job_id)
        except ProviderError as exc:  # best effort: the job ends for us either way
            log.warning("provider cancel of %s failed: %s", job.generation_id, exc.error_code)

    @staticmethod
    def _context(job: GenerationSubmitted) -> GenerationContext:
        return GenerationContext(id=job.generation_id, provider_id=job.provider_id,
                                 operation_type=job.operation_type, params=job.params, user_id=job.user_id,
                                 account_id=job.account_id)

    async def _publish(self, events: list[Event]) -> None:
        for event in events:
            await publish_event(self.ctx.broker, event)
