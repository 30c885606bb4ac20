"""Composition root of billing."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from pixsim_contracts import AnyCreditEvent, CreditEvent, subjects
from pixsim_provider_sdk import Registry
from pixsim_runtime.consumers import DeadLetter, subscribe
from pixsim_runtime.service import ServiceContext, build_service

from . import ledger
from .settings import BillingSettings


def create_app(
    settings: BillingSettings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    registry: Registry | None = None,
) -> FastAPI:
    settings = settings or BillingSettings()

    def setup(ctx: ServiceContext) -> None:
        async def on_credit_event(event: CreditEvent, _msg: Any) -> None:
            if event.provider_id not in ctx.registry:
                raise DeadLetter(f"unknown provider {event.provider_id!r}")
            declared = ctx.registry.manifest(event.provider_id).credit_types
            if event.credit_type not in declared:
                raise DeadLetter(f"credit type {event.credit_type!r} is not declared by provider "
                                 f"{event.provider_id!r} (declared: {', '.join(declared)})")
            await ledger.apply(ctx.db, event)

        subscribe(
            ctx.broker, service="billing", subject=subjects.CREDIT_SUBJECTS, stream=subjects.CREDITS_STREAM,
            durable="billing", event_type=AnyCreditEvent, handler=on_credit_event, retry=ctx.retry,
        )

    return build_service(settings, setup=setup, tracer_provider=tracer_provider, registry=registry)
