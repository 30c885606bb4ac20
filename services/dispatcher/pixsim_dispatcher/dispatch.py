"""Dispatching one `generation.requested`: provider, account, parameters, files, estimate, execute.

Each generation has one document in `dispatches` (keyed by the generation id) that records how far
its dispatch got, plus the events it decided on (an outbox). A redelivered or duplicated request
therefore never runs twice on the provider: it re-publishes the recorded outcome instead.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from pixsim_contracts import AnyEvent, ErrorInfo, Event, GenerationRequested
from pixsim_provider_sdk import (
    GenerationContext,
    Provider,
    ProviderError,
    ProviderNotFoundError,
    RateLimitError,
    UnsupportedOperationError,
    apply_defaults,
    validate_params,
)
from pixsim_provider_sdk.files import cleanup_temp_paths, resolve_source
from pixsim_runtime.accounts import pick_account
from pixsim_runtime.broker import publish_event
from pixsim_runtime.consumers import PollAgain
from pixsim_runtime.secrets import CredentialCipher
from pixsim_runtime.service import ServiceContext

from .outcomes import error_info, rejected_event, submitted_events
from .settings import DispatcherSettings

log = logging.getLogger(__name__)

DISPATCHES = "dispatches"


class Dispatcher:
    def __init__(self, ctx: ServiceContext, settings: DispatcherSettings, cipher: CredentialCipher) -> None:
        self.ctx = ctx
        self.settings = settings
        self.cipher = cipher
        self.dispatches = ctx.db[DISPATCHES]

    async def on_requested(self, request: GenerationRequested, _msg: Any) -> None:
        record = await self._claim(request)
        if record.get("outbox") is not None:  # decided before: publish again, JetStream drops duplicates
            await self._publish([AnyEvent.validate_python(e) for e in record["outbox"]])
            return
        if record["state"] == "executing":
            # A previous delivery died inside execute(): the provider may or may not have the job.
            # Running it again could bill the user twice, so end it with a clear code instead.
            error = ErrorInfo(code="submit_outcome_unknown", message="dispatcher stopped while submitting; "
                              "the job was not retried to avoid running it twice")
            await self._decide(request, [rejected_event(request, error, record.get("account_id"))])
            return
        events = await self._dispatch(request, record)  # raises PollAgain to retry a transient error
        await self._decide(request, events)

    async def _dispatch(self, request: GenerationRequested, record: dict[str, Any]) -> list[Event]:
        try:
            provider = self.ctx.registry.get(request.provider_id)
            provider.validate_operation(request.operation_type)
        except (ProviderNotFoundError, UnsupportedOperationError) as exc:
            code = "provider_not_found" if isinstance(exc, ProviderNotFoundError) else "unsupported_operation"
            return [rejected_event(request, ErrorInfo(code=code, message=str(exc)))]
        spec = provider.get_operation_parameter_spec().get(request.operation_type.value)
        problems = validate_params(spec, request.params)
        if problems:
            return [rejected_event(request, ErrorInfo(code="param_invalid", message="; ".join(problems)))]
        params = apply_defaults(spec, request.params)

        account = await pick_account(self.ctx.db, provider.manifest, self.cipher, request.account_id)
        if account is None:
            where = f"account {request.account_id!r}" if request.account_id else "an active account"
            error = ErrorInfo(code="no_account_available", message=f"{request.provider_id}: {where} is not available")
            return [rejected_event(request, error)]

        estimate = provider.estimate_credits(request.operation_type, params) or {}
        try:
            await self._mark(request.generation_id, state="executing", account_id=account.id)
            result = await self._execute(provider, request, params, account)
        except ProviderError as exc:
            return await self._on_provider_error(request, record, exc, account.id)
        now = datetime.now(UTC)
        return submitted_events(request, account.id, result, estimate, now, self.settings.job_timeout_s)

    async def _execute(self, provider: Provider, request: GenerationRequested, params: dict, account) -> Any:
        mapped = provider.map_parameters(request.operation_type, params)
        temp_paths: list[str] = []
        try:
            if provider.requires_file_preparation():
                generation = GenerationContext(
                    id=request.generation_id, provider_id=request.provider_id, operation_type=request.operation_type,
                    params=params, user_id=request.user_id, account_id=account.id,
                )
                mapped = await provider.prepare_execution_params(generation, mapped, resolve_source)
                temp_paths = list(mapped.get("_temp_paths") or [])
            result = await provider.execute(request.operation_type, account, mapped)
        finally:
            cleanup_temp_paths(temp_paths)  # whatever happened, the prepared files go
        if not result.provider_job_id:
            raise ProviderError("provider returned no job id", error_code="provider_generic", retryable=False)
        return result

    async def _on_provider_error(
        self, request: GenerationRequested, record: dict[str, Any], exc: ProviderError, account_id: str
    ) -> list[Event]:
        attempts = record.get("attempts", 0) + 1
        if exc.retryable and attempts < self.settings.submit_attempts:
            delay = exc.retry_after if isinstance(exc, RateLimitError) and exc.retry_after else None
            delay = delay or min(self.settings.retry_backoff * 2 ** (attempts - 1), 30.0)
            log.warning("submit of %s failed (%s), retry %d in %.1fs", request.generation_id, exc.error_code,
                        attempts, delay)
            await self._mark(request.generation_id, state="pending", attempts=attempts)
            raise PollAgain(delay)
        return [rejected_event(request, error_info(exc), account_id)]

    # -- the dispatch record --------------------------------------------------------------------
    async def _claim(self, request: GenerationRequested) -> dict[str, Any]:
        doc = {"_id": request.generation_id, "state": "pending", "attempts": 0, "outbox": None,
               "created_at": datetime.now(UTC)}
        try:
            await self.dispatches.insert_one(doc)
            return doc
        except DuplicateKeyError:
            return await self.dispatches.find_one({"_id": request.generation_id})

    async def _mark(self, generation_id: str, **fields: Any) -> None:
        await self.dispatches.update_one({"_id": generation_id}, {"$set": fields})

    async def _decide(self, request: GenerationRequested, events: list[Event]) -> None:
        """Record the outcome first (the outbox), then publish it."""
        await self._mark(request.generation_id, state="decided",
                         outbox=[e.model_dump(mode="json") for e in events])
        await self._publish(events)

    async def _publish(self, events: list[Event]) -> None:
        for event in events:
            await publish_event(self.ctx.broker, event)
