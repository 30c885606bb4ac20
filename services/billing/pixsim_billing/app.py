"""Composition root of billing."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from pixsim_contracts import AnyCreditEvent, CreditEvent, subjects
from pixsim_provider_sdk import Registry
from pixsim_runtime.accounts import ACCOUNTS, is_system_account, system_account_id
from pixsim_runtime.consumers import DeadLetter, subscribe
from pixsim_runtime.service import ServiceContext, build_service
from pymongo.asynchronous.database import AsyncDatabase

from . import ledger, notices
from .settings import BillingSettings


class AccountOwners:
    """Which provider each account belongs to. An account's provider never changes, so a known answer is
    kept (for the process's life); an unknown account is asked again every time, since it may be created
    in a moment. Saves a read per credit event."""

    def __init__(self, db: AsyncDatabase, cache_size: int = 100_000) -> None:
        self.accounts = db[ACCOUNTS]
        self.cache_size = cache_size
        self._known: dict[str, str] = {}

    async def provider_of(self, account_id: str) -> str | None:
        if account_id in self._known:
            return self._known[account_id]
        doc = await self.accounts.find_one({"_id": account_id}, {"provider_id": 1})
        if doc is None or doc.get("provider_id") is None:
            return None
        if len(self._known) >= self.cache_size:
            self._known.clear()
        self._known[account_id] = doc["provider_id"]
        return doc["provider_id"]


def create_app(
    settings: BillingSettings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    registry: Registry | None = None,
) -> FastAPI:
    settings = settings or BillingSettings()

    def setup(ctx: ServiceContext) -> None:
        owners = AccountOwners(ctx.db)

        async def check_account(event: CreditEvent) -> None:
            """Only a known account of the event's provider has a ledger."""
            if is_system_account(event.account_id):
                manifest = ctx.registry.manifest(event.provider_id)
                if event.account_id != system_account_id(event.provider_id) or manifest.requires_credentials:
                    raise DeadLetter(
                        f"{event.account_id!r} is not a system account of provider {event.provider_id!r}"
                    )
                return
            provider_id = await owners.provider_of(event.account_id)
            if provider_id is None:
                raise DeadLetter(f"unknown account {event.account_id!r}")
            if provider_id != event.provider_id:
                raise DeadLetter(
                    f"account {event.account_id!r} belongs to provider {provider_id!r}, "
                    f"not {event.provider_id!r}"
                )

        async def on_credit_event(event: CreditEvent, _msg: Any) -> None:
            if event.provider_id not in ctx.registry:
                raise DeadLetter(f"unknown provider {event.provider_id!r}")
            declared = ctx.registry.manifest(event.provider_id).credit_types
            if event.credit_type not in declared:
                raise DeadLetter(
                    f"credit type {event.credit_type!r} is not declared by provider "
                    f"{event.provider_id!r} (declared: {', '.join(declared)})"
                )
            await check_account(event)
            entry = await ledger.apply(ctx.db, event)
            if not is_system_account(event.account_id):
                # Also on a redelivery (entry None): a crash may have come between booking and announcing.
                kind = entry["kind"] if entry else ledger.KINDS[type(event)]
                await notices.check(
                    ctx.db,
                    ctx.broker,
                    ledger.balance_id(event.account_id, event.credit_type),
                    kind,
                    settings.credits_low_threshold,
                )

        subscribe(
            ctx.broker,
            service="billing",
            subject=subjects.CREDIT_SUBJECTS,
            stream=subjects.CREDITS_STREAM,
            durable="billing",
            event_type=AnyCreditEvent,
            handler=on_credit_event,
            retry=ctx.retry,
            ack_wait_s=settings.ack_wait_s,
        )

    async def on_startup(ctx: ServiceContext) -> None:
        await ledger.create_indexes(ctx.db)

    return build_service(
        settings, setup=setup, on_startup=on_startup, tracer_provider=tracer_provider, registry=registry
    )
