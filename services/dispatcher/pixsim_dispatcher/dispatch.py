"""Dispatching one `generation.requested`: provider, parameters, estimate, account, files, execute.

Each generation has one document in `dispatches` (keyed by the generation id) that records how far
its dispatch got, the account lease it holds, and the events it decided on (an outbox). A redelivered
or duplicated request therefore never runs twice on the provider: it re-publishes the recorded
outcome instead. Account choice, leases and rotation are in `pool.py`, `selection.py` and `health.py`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pixsim_contracts import ErrorInfo, Event, GenerationRequested, new_id
from pixsim_provider_sdk import (
    REFERENCE_PARAM,
    GenerationContext,
    GenerationResult,
    InvalidParametersError,
    Provider,
    ProviderAccount,
    ProviderError,
    ProviderNotFoundError,
    RateLimitError,
    apply_defaults,
    map_and_prepare,
)
from pixsim_provider_sdk.files import cleanup_temp_paths, resolve_source
from pixsim_provider_sdk.safe_fetch import FetchPolicy, parse_allow_hosts
from pixsim_runtime import outbox
from pixsim_runtime.accounts import (
    ACCOUNTS,
    is_system_account,
    set_status,
    system_account,
    to_provider_account,
)
from pixsim_runtime.backoff import backoff
from pixsim_runtime.broker import publish_events
from pixsim_runtime.consumers import PollAgain
from pixsim_runtime.faults import fault_point
from pixsim_runtime.group_commit import BulkWriter
from pixsim_runtime.requests import RequestRejected, check_request
from pixsim_runtime.secrets import CredentialCipher, scrub
from pixsim_runtime.service import ServiceContext
from pixsim_runtime.storage import Storage
from pymongo import ReturnDocument

from . import health
from .outcomes import error_info, rejected_event, submitted_events
from .pool import AccountPool, Acquired, Lease, Unavailable, Wait
from .settings import DispatcherSettings
from .sources import AssetSources

log = logging.getLogger(__name__)

DISPATCHES = "dispatches"


@dataclass(frozen=True)
class Decision:
    """What a dispatch ends with: the events to publish, and what becomes of the account lease."""

    events: list[Event]
    lease: Lease | None = None
    submitted: bool = (
        False  # the provider has the job: billing settles the hold, the slot lasts until it ends
    )
    lease_expires_at: float | None = None  # epoch seconds
    #: Nobody knows yet whether the provider has the job (why): it stays pending, slot and hold kept, and
    #: the orphan sweep asks the provider again (`Dispatcher.sweep`).
    unresolved: str | None = None


class Dispatcher:
    def __init__(self, ctx: ServiceContext, settings: DispatcherSettings, cipher: CredentialCipher) -> None:
        self.ctx = ctx
        self.settings = settings
        self.cipher = cipher
        self.dispatches = ctx.db[DISPATCHES]
        # The claims and marks of concurrent dispatches share round trips (a group commit).
        self.records = BulkWriter(self.dispatches)
        holder = f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"
        self.pool = AccountPool(
            ctx.db,
            ctx.broker,
            holder=holder,
            lease_ttl_s=settings.lease_ttl_s,
            is_submitted=self._is_submitted,
        )
        policy = FetchPolicy(
            parse_allow_hosts(settings.fetch_allow_hosts), settings.fetch_max_bytes, settings.fetch_timeout_s
        )
        self.resolve_source = functools.partial(
            resolve_source, policy=policy
        )  # the providers' resolve_source_fn
        self.resolve_source = AssetSources(
            ctx.db, Storage.from_settings(settings), self.resolve_source
        )  # asset://

    async def on_requested(self, request: GenerationRequested, msg: Any) -> None:
        record = await self._claim(request)
        if record.get("outbox") is not None:  # decided before: finish it again; JetStream drops duplicates
            await self._settle_lease(request.generation_id, record)
            await self._publish(outbox.decode(record["outbox"]))
            return
        if record["state"] == "unknown":  # the orphan sweep owns it now
            return
        if record["state"] == "executing":
            # A previous delivery died inside execute(): the provider may or may not have the job. Ask it;
            # submitting again blindly could run (and bill) the job twice.
            decision = await self._after_lost_submit(request, record)
            if decision is not None:
                await self._decide(request, decision, record)
                return
            record = await self._claim(request)  # provably never accepted: dispatch it afresh
        # Deliveries so far: a job waiting for an account re-checks less often the longer it waits.
        metadata = getattr(getattr(msg, "raw_message", None), "metadata", None)
        decision = await self._dispatch(request, record, getattr(metadata, "num_delivered", 1) or 1)
        await self._decide(request, decision, record)

    async def on_generation_ended(self, event: Any, _msg: Any) -> None:
        """A job ended: its account's slot comes back (its credits are billing's to settle)."""
        account_id = getattr(event, "account_id", None)
        if account_id and not is_system_account(account_id):
            await self.pool.release(account_id, event.generation_id)

    async def _dispatch(
        self, request: GenerationRequested, record: dict[str, Any], deliveries: int
    ) -> Decision:
        try:
            checked = check_request(
                self.ctx.registry, request.provider_id, request.operation_type, request.params
            )
        except RequestRejected as exc:
            return Decision([rejected_event(request, ErrorInfo(code=exc.code, message=exc.message))])
        provider, spec = checked.provider, checked.spec
        params = apply_defaults(spec, request.params)
        estimate = {
            ct: int(n) for ct, n in (provider.estimate_credits(request.operation_type, params) or {}).items()
        }
        undeclared = sorted(set(estimate) - set(provider.manifest.credit_types))
        if undeclared:
            error = ErrorInfo(
                code="credit_type_not_declared",
                message=f"{request.provider_id} estimated credit "
                f"types {undeclared} its manifest does not declare",
            )
            return Decision([rejected_event(request, error)])
        manifest = provider.manifest
        if not manifest.requires_credentials and request.account_id in (None, system_account(manifest).id):
            decision = await self._submit(
                provider, request, record, params, system_account(manifest), estimate
            )
            assert decision is not None  # the system account is never rotated away from
            return decision
        return await self._with_accounts(provider, request, record, params, estimate, deliveries)

    async def _with_accounts(
        self,
        provider: Provider,
        request: GenerationRequested,
        record: dict[str, Any],
        params: dict[str, Any],
        estimate: dict[str, int],
        deliveries: int,
    ) -> Decision:
        """Lease the best account and submit; on an account-level refusal, mark it and try the next."""
        while True:
            now = datetime.now(UTC)
            choice = await self.pool.acquire(
                provider.manifest, request.generation_id, estimate, request.account_id, now, request.user_id
            )
            if isinstance(choice, Unavailable):
                return Decision(
                    [rejected_event(request, ErrorInfo(code=choice.code, message=choice.message))]
                )
            if isinstance(choice, Wait):
                return self._wait(request, record, choice, now, deliveries)
            assert isinstance(choice, Acquired)
            account = to_provider_account(choice.doc, self.cipher)
            decision = await self._submit(provider, request, record, params, account, estimate, choice)
            if decision is not None:
                return decision

    def _wait(
        self, request: GenerationRequested, record: dict[str, Any], wait: Wait, now: datetime, deliveries: int
    ) -> Decision:
        """Ask to see the request again later, unless its dispatch deadline has come."""
        deadline = record["deadline_at"]
        if now >= deadline:
            error = ErrorInfo(
                code="no_account_available",
                retryable=True,
                message=f"no account could take the job before its deadline: {wait.reason}",
            )
            return Decision([rejected_event(request, error)])
        s = self.settings
        delay = min(s.account_wait_s * 1.5 ** max(deliveries - 1, 0), s.account_wait_max_s)
        if wait.until is not None:  # a cooldown: come back when it ends, not before
            delay = max((wait.until - now).total_seconds() + 0.01, 0.01)
        raise PollAgain(min(delay, max((deadline - now).total_seconds(), 0.01)))

    async def _submit(
        self,
        provider: Provider,
        request: GenerationRequested,
        record: dict[str, Any],
        params: dict[str, Any],
        account: ProviderAccount,
        estimate: dict[str, int],
        choice: Acquired | None = None,
    ) -> Decision | None:
        """Prepare, then execute on this account. None: the account refused the job for reasons of its own;
        try another."""
        lease = choice.lease if choice else None
        try:  # before `executing`: a bad source or bad params cannot have reached the provider
            mapped = await self._prepare(provider, request, params, account)
        except (ProviderError, ValueError, TypeError, KeyError) as exc:
            if not isinstance(exc, ProviderError):
                exc = InvalidParametersError(
                    f"{request.provider_id} cannot use these params: {type(exc).__name__}: {exc}"
                )
            return await self._not_submitted(request, record, exc, account, choice)
        mapped[REFERENCE_PARAM] = request.generation_id  # the provider's idempotency key / client reference
        try:
            since = datetime.now(UTC).timestamp()
            await self._mark(
                request.generation_id,
                state="executing",
                account_id=account.id,
                lease=lease.ref() if lease else None,
                dispatcher=self.pool.holder,
                executing_at=since,
            )
            try:
                result = await self._execute(provider, request, mapped, account)
            except ProviderError as exc:
                if not exc.maybe_accepted:
                    return await self._not_submitted(request, record, exc, account, choice)
                log.warning(
                    "submit of %s ended ambiguously (%s); asking %s whether it has the job",
                    request.generation_id,
                    exc.error_code,
                    request.provider_id,
                )
                found = await self._find(provider, request, account, mapped, since)
                if found is False:  # provably not there: an ordinary failed submit
                    return await self._not_submitted(request, record, exc, account, choice)
                if found is None:
                    return self._unknown(request, record, account.id, lease, exc.error_code)
                result = GenerationResult(provider_job_id=found)
            await fault_point("dispatcher.after_execute")
        finally:
            cleanup_temp_paths(mapped.get("_temp_paths"))  # whatever happened, the prepared files go
        return self._submitted(request, account.id, result, estimate, params, lease)

    def _submitted(
        self,
        request: GenerationRequested,
        account_id: str,
        result: GenerationResult,
        estimate: dict[str, int],
        params: dict[str, Any],
        lease: Lease | None,
    ) -> Decision:
        now = datetime.now(UTC)
        events = submitted_events(
            request, account_id, result, estimate, now, self.settings.job_timeout_s, params
        )
        expires = now + timedelta(seconds=self.settings.job_timeout_s + self.settings.lease_grace_s)
        return Decision(events, lease, submitted=True, lease_expires_at=expires.timestamp())

    def _unknown(
        self,
        request: GenerationRequested,
        record: dict[str, Any],
        account_id: str | None,
        lease: Lease | None,
        why: str,
    ) -> Decision:
        """The provider cannot say whether it accepted the job. Until `unknown_give_up_s` has passed since
        that was first seen, the job stays pending with its slot and hold (the sweep asks again); then it
        fails `submit_outcome_unknown` and the hold comes back."""
        since = record.get("unknown_since")  # epoch seconds, like every time this record `$set`s
        if since is None or time.time() - since < self.settings.unknown_give_up_s:
            return Decision([], lease, unresolved=why)
        error = ErrorInfo(
            code="submit_outcome_unknown",
            message=f"the provider could not say whether it "
            f"accepted the job ({why}) for {self.settings.unknown_give_up_s:.0f} s; it was not "
            "submitted again, to avoid running it twice",
        )
        return Decision([rejected_event(request, error, account_id)], lease)

    async def _find(
        self,
        provider: Provider,
        request: GenerationRequested,
        account: ProviderAccount,
        mapped: dict[str, Any],
        since: float | None,
    ) -> str | bool | None:
        """Ask the provider a few times for the job with this generation's reference: its job id, False
        when it proves there is none, None when it cannot say."""
        for attempt in range(self.settings.find_attempts):
            try:
                await self.ctx.pacer.turn(request.provider_id, "status", account.id)
                found = await provider.find_job(
                    account, request.generation_id, request.operation_type, mapped, since=since
                )
                return found if found else False
            except NotImplementedError:
                return None
            except Exception as exc:  # noqa: BLE001 - any failure to answer means "cannot say (yet)"
                log.warning(
                    "looking up %s at %s failed (%s); %d tries left",
                    request.generation_id,
                    request.provider_id,
                    exc,
                    self.settings.find_attempts - attempt - 1,
                )
                await asyncio.sleep(backoff(attempt, self.settings.retry_backoff))
        return None

    async def _after_lost_submit(
        self, request: GenerationRequested, record: dict[str, Any], *, sweeping: bool = False
    ) -> Decision | None:
        """A redelivery that finds `executing` (or the sweep, for a job left `unknown`): the job if the
        provider has it; None if it provably does not, so it is dispatched again (the sweep, whose request
        was acked long ago, fails it retryable instead, giving the hold back); else still unknown."""
        lease = Lease.from_ref(request.generation_id, record["lease"]) if record.get("lease") else None
        account_id = record.get("account_id")
        try:
            provider = self.ctx.registry.get(request.provider_id)
        except ProviderNotFoundError:
            return self._unknown(request, record, account_id, lease, "provider no longer loaded")
        spec = provider.get_operation_parameter_spec().get(request.operation_type.value)
        params = apply_defaults(spec, request.params)
        estimate = {
            ct: int(n) for ct, n in (provider.estimate_credits(request.operation_type, params) or {}).items()
        }
        if lease is not None:
            estimate = dict(lease.credits)  # what was held is what is reserved
        account = await self._account(provider, account_id)
        if account is None:
            return self._unknown(request, record, account_id, lease, "its account no longer exists")
        try:
            mapped = provider.map_parameters(request.operation_type, params)
        except (ProviderError, ValueError, TypeError, KeyError):
            mapped = {}
        found = await self._find(provider, request, account, mapped, record.get("executing_at"))
        if isinstance(found, str):
            log.warning(
                "dispatch of %s was interrupted after %s accepted it; continuing as submitted",
                request.generation_id,
                request.provider_id,
            )
            return self._submitted(
                request, account.id, GenerationResult(provider_job_id=found), estimate, params, lease
            )
        if found is None:
            return self._unknown(
                request,
                record,
                account.id,
                lease,
                record.get("unknown_why") or "dispatcher stopped while submitting",
            )
        if sweeping:
            error = ErrorInfo(
                code="submit_not_accepted",
                retryable=True,
                message=f"{request.provider_id} never "
                "created the job (its answer to the submit was lost); nothing was charged",
            )
            return Decision([rejected_event(request, error, account.id)], lease)
        log.warning(
            "dispatch of %s was interrupted before %s accepted it; dispatching again",
            request.generation_id,
            request.provider_id,
        )
        if lease is not None:
            await self.pool.release(lease.account_id, lease.generation_id, return_credits=True)
        await self._mark(request.generation_id, state="pending", lease=None)
        return None

    # -- the orphan sweep -----------------------------------------------------------------------
    async def sweep(self) -> int:
        """Ask the providers again about every job whose submit outcome is unknown and due for a look: found,
        it is adopted (submitted, billed normally); provably absent, its hold comes back; still unknown,
        it waits for the next round (until `unknown_give_up_s`). Replicas share the work: each record is
        claimed by moving its `sweep_at` on. Returns how many were looked at."""
        looked = 0
        while True:
            now = time.time()
            record = await self.dispatches.find_one_and_update(
                {"state": "unknown", "sweep_at": {"$lte": now}},
                {"$set": {"sweep_at": now + self.settings.sweep_interval_s}},
                return_document=ReturnDocument.AFTER,
            )
            if record is None:
                return looked
            looked += 1
            request = GenerationRequested.model_validate(record["request"])
            decision = await self._after_lost_submit(request, record, sweeping=True)
            assert decision is not None  # sweeping never dispatches again
            await self._decide(request, decision, record)

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                if looked := await self.sweep():
                    log.info("orphan sweep looked at %d job(s) whose submit outcome was unknown", looked)
            except Exception:
                log.exception("orphan sweep failed; trying again in %.0f s", self.settings.sweep_interval_s)

    async def _account(self, provider: Provider, account_id: str | None) -> ProviderAccount | None:
        if account_id is None:
            return None
        if account_id == system_account(provider.manifest).id:
            return system_account(provider.manifest)
        doc = await self.ctx.db[ACCOUNTS].find_one({"_id": account_id})
        return to_provider_account(doc, self.cipher) if doc else None

    async def _not_submitted(
        self,
        request: GenerationRequested,
        record: dict[str, Any],
        exc: ProviderError,
        account: ProviderAccount,
        choice: Acquired | None,
    ) -> Decision | None:
        """It never reached the provider: the slot and the hold come back now."""
        if choice is not None:
            await self.pool.release(choice.lease.account_id, choice.lease.generation_id, return_credits=True)
        return await self._on_provider_error(request, record, exc, account, choice)

    async def _on_provider_error(
        self,
        request: GenerationRequested,
        record: dict[str, Any],
        exc: ProviderError,
        account: ProviderAccount,
        choice: Acquired | None,
    ) -> Decision | None:
        gid = request.generation_id
        message = scrub(exc.message, account.credentials)  # in case the provider echoed a secret back
        now = datetime.now(UTC)
        s = self.settings
        reaction = health.Reaction()
        if choice is not None:
            reaction = health.react(
                exc,
                now=now,
                streak=choice.doc.get("cooldown_streak") or 0,
                base_s=s.cooldown_base_s,
                max_s=s.cooldown_max_s,
            )
        if reaction.status:
            also = {"$inc": {"cooldown_streak": 1}} if reaction.status == "cooling_down" else None
            await set_status(
                self.ctx.db,
                self.ctx.broker,
                account.id,
                reaction.status,
                scrub(health.describe(exc), account.credentials),
                error_code=exc.error_code,
                cooldown_until=reaction.cooldown_until,
                generation_id=gid,
                also=also,
            )
        if reaction.rotate:
            tried = [*(record.get("tried") or []), {"account_id": account.id, "code": exc.error_code}]
            record["tried"] = tried
            await self._mark(gid, state="pending", tried=tried, lease=None)
            log.warning(
                "submit of %s refused by account %s (%s); trying another", gid, account.id, exc.error_code
            )
            if request.account_id and reaction.permanent:
                reason = scrub(health.describe(exc), account.credentials)
                error = ErrorInfo(
                    code="pinned_account_unavailable", message=f"pinned account {account.id}: {reason}"
                )
                return Decision([rejected_event(request, error)])
            if len(tried) >= s.max_account_attempts:
                codes = ", ".join(f"{t['account_id']}: {t['code']}" for t in tried)
                error = ErrorInfo(
                    code="no_account_available",
                    message=f"gave up after {len(tried)} accounts refused the job ({codes})",
                    retryable=True,
                )
                return Decision([rejected_event(request, error)])
            return None
        attempts = record.get("attempts", 0) + 1
        if exc.retryable and attempts < s.submit_attempts:
            delay = exc.retry_after if isinstance(exc, RateLimitError) and exc.retry_after else None
            delay = delay or backoff(attempts - 1, s.retry_backoff, 30.0)
            log.warning("submit of %s failed (%s), retry %d in %.1fs", gid, exc.error_code, attempts, delay)
            await self._mark(gid, state="pending", attempts=attempts, lease=None)
            raise PollAgain(delay)
        error = error_info(exc).model_copy(update={"message": message})
        return Decision([rejected_event(request, error, account.id)])

    async def _prepare(
        self, provider: Provider, request: GenerationRequested, params: dict, account: ProviderAccount
    ) -> dict[str, Any]:
        """Map the params and fetch the sources (safely: `pixsim_provider_sdk.safe_fetch`)."""
        generation = GenerationContext(
            id=request.generation_id,
            provider_id=request.provider_id,
            operation_type=request.operation_type,
            params=params,
            user_id=request.user_id,
            account_id=account.id,
        )
        return await map_and_prepare(provider, generation, self.resolve_source)

    async def _execute(
        self, provider: Provider, request: GenerationRequested, mapped: dict, account: ProviderAccount
    ) -> Any:
        await self.ctx.pacer.turn(request.provider_id, "submit", account.id)
        result = await provider.execute(request.operation_type, account, mapped)
        if not result.provider_job_id:
            raise ProviderError("provider returned no job id", error_code="provider_generic", retryable=False)
        return result

    # -- the dispatch record --------------------------------------------------------------------
    async def _claim(self, request: GenerationRequested) -> dict[str, Any]:
        now = datetime.now(UTC)
        doc = {
            "_id": request.generation_id,
            "state": "pending",
            "attempts": 0,
            "outbox": None,
            "created_at": now,
            "deadline_at": now + timedelta(seconds=self.settings.dispatch_timeout_s),
        }
        if await self.records.insert(doc):
            return doc
        found = await self.dispatches.find_one({"_id": request.generation_id})
        found.setdefault(
            "deadline_at", found["created_at"] + timedelta(seconds=self.settings.dispatch_timeout_s)
        )
        return found

    async def _is_submitted(self, generation_id: str) -> bool:
        doc = await self.dispatches.find_one({"_id": generation_id})
        return bool(doc and doc.get("submitted"))

    async def _mark(self, generation_id: str, **fields: Any) -> None:
        await self.records.update({"_id": generation_id}, {"$set": fields})

    async def _decide(
        self, request: GenerationRequested, decision: Decision, record: dict[str, Any] | None = None
    ) -> None:
        """Record the outcome first (the outbox), then settle the lease, then publish."""
        if decision.unresolved is not None:
            await self._hold_unresolved(request, decision, record or {})
            return
        record = {
            "state": "decided",
            "outbox": outbox.encode(decision.events),
            "submitted": decision.submitted,
            "lease_expires_at": decision.lease_expires_at,
            "lease": decision.lease.ref() if decision.lease else None,
        }
        await self._mark(request.generation_id, **record)
        await self._settle_lease(request.generation_id, record)
        await self._publish(decision.events)

    async def _hold_unresolved(
        self, request: GenerationRequested, decision: Decision, record: dict[str, Any]
    ) -> None:
        """Keep the job pending with its slot and hold until the sweep knows more (or gives up)."""
        s = self.settings
        now = time.time()  # epoch seconds: nx-27017 gives `$set` datetimes back as strings
        since = record.get("unknown_since") or now
        if decision.lease is not None:  # the slot and hold outlive the sweep's last try, not the lease TTL
            await self.pool.extend(
                decision.lease, since + s.unknown_give_up_s + s.sweep_interval_s + s.lease_grace_s
            )
        await self._mark(
            request.generation_id,
            state="unknown",
            unknown_since=since,
            unknown_why=decision.unresolved,
            request=request.model_dump(mode="json"),
            lease=decision.lease.ref() if decision.lease else None,
            sweep_at=now + s.sweep_interval_s,
        )
        if since == now:
            log.warning(
                "%s could not say whether it accepted %s (%s); holding its credits, the orphan sweep "
                "will ask again",
                request.provider_id,
                request.generation_id,
                decision.unresolved,
            )

    async def _settle_lease(self, generation_id: str, record: dict[str, Any]) -> None:
        if not record.get("lease"):
            return
        lease = Lease.from_ref(generation_id, record["lease"])
        if record.get("submitted"):
            await self.pool.settle_by_billing(lease, record["lease_expires_at"])
        else:
            await self.pool.release(lease.account_id, generation_id, return_credits=True)

    async def _publish(self, events: list[Event]) -> None:
        await publish_events(self.ctx.broker, events)
