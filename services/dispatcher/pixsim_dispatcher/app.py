"""Composition root of the dispatcher."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from pixsim_contracts import (
    GenerationCancelled,
    GenerationCompleted,
    GenerationFailed,
    GenerationFiltered,
    GenerationRequested,
    subjects,
)
from pixsim_provider_sdk import Registry
from pixsim_runtime.consumers import RetryPolicy, subscribe
from pixsim_runtime.secrets import cipher_from_env
from pixsim_runtime.service import ServiceContext, build_service

from .dispatch import DISPATCHES, Dispatcher
from .settings import DispatcherSettings

MAX_DISPATCH_DELIVERIES = 10_000
#: The events that end a job, so its account slot comes back.
ENDINGS = (
    ("completed", GenerationCompleted),
    ("failed", GenerationFailed),
    ("filtered", GenerationFiltered),
    ("cancelled", GenerationCancelled),
)


def create_app(
    settings: DispatcherSettings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    registry: Registry | None = None,
) -> FastAPI:
    settings = settings or DispatcherSettings()

    def setup(ctx: ServiceContext) -> None:
        dispatcher = ctx.extras["dispatcher"] = Dispatcher(ctx, settings, cipher_from_env())
        # A job waiting for an account is redelivered on a schedule bounded by PIXSIM_DISPATCH_TIMEOUT;
        # the delivery cap is only a backstop above anything that schedule can reach.
        waits = RetryPolicy(
            max_attempts=ctx.retry.max_attempts,
            first_delay=ctx.retry.first_delay,
            max_deliveries=MAX_DISPATCH_DELIVERIES,
        )
        subscribe(
            ctx.broker,
            service="dispatcher",
            subject=subjects.generation_events("requested"),
            stream=subjects.GENERATIONS_STREAM,
            durable="dispatcher",
            event_type=GenerationRequested,
            handler=dispatcher.on_requested,
            retry=waits,
            batch_size=settings.batch_size,
            ack_wait_s=settings.ack_wait_s,
            keep_alive_s=min(10.0, settings.ack_wait_s / 3),  # a slow submit keeps its message meanwhile
        )
        for event, event_type in ENDINGS:
            subscribe(
                ctx.broker,
                service="dispatcher",
                subject=subjects.generation_events(event),
                stream=subjects.GENERATIONS_STREAM,
                durable=f"dispatcher-slots-{event}",
                event_type=event_type,
                handler=dispatcher.on_generation_ended,
                retry=ctx.retry,
                batch_size=settings.batch_size,
            )

    async def on_startup(ctx: ServiceContext) -> None:
        await ctx.db[DISPATCHES].create_index([("state", 1), ("sweep_at", 1)])  # the orphan sweep's query

    async def orphan_sweep(ctx: ServiceContext) -> None:
        await ctx.extras["dispatcher"].sweep_forever()

    return build_service(
        settings,
        setup=setup,
        on_startup=on_startup,
        background=[orphan_sweep],
        tracer_provider=tracer_provider,
        registry=registry,
    )
