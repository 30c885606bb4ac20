"""Composition root of the poller: two consumers feed the poll schedule, a claim loop works it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from pixsim_contracts import GenerationCancelRequested, GenerationSubmitted, subjects
from pixsim_provider_sdk import Registry
from pixsim_runtime.consumers import RetryPolicy, subscribe
from pixsim_runtime.secrets import cipher_from_env
from pixsim_runtime.service import ServiceContext, build_service

from .poll import Poller
from .settings import PollerSettings

#: On shutdown, running polls may finish for this long; the rest are given back due at once.
SHUTDOWN_GRACE_S = 5.0
#: The old schedule's bound on deliveries of one `submitted` message (see setup below).
LEGACY_DELIVERIES = 10_000


def create_app(
    settings: PollerSettings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    registry: Registry | None = None,
) -> FastAPI:
    settings = settings or PollerSettings()
    pollers: list[Poller] = []

    def setup(ctx: ServiceContext) -> None:
        poller = Poller(ctx, settings, cipher_from_env())
        pollers.append(poller)
        # Acked once the job is on the schedule (see poll.py): no message waits here for a poll. A message
        # from the days when redeliveries were the schedule may come with many deliveries already: it is
        # scheduled, not dead-lettered (`max_deliveries`); a failing handler still is, after max_attempts.
        batch = min(settings.batch_size, settings.max_ack_pending)
        retry = RetryPolicy(
            max_attempts=settings.max_attempts,
            first_delay=settings.retry_backoff,
            max_deliveries=LEGACY_DELIVERIES,
        )
        subscribe(
            ctx.broker,
            service="poller",
            subject=subjects.generation_events("submitted"),
            stream=subjects.GENERATIONS_STREAM,
            durable="poller",
            event_type=GenerationSubmitted,
            handler=poller.on_submitted,
            retry=retry,
            batch_size=batch,
            ack_wait_s=settings.lease_s,
            max_ack_pending=settings.max_ack_pending,
        )
        subscribe(
            ctx.broker,
            service="poller",
            subject=subjects.generation_events("cancel_requested"),
            stream=subjects.GENERATIONS_STREAM,
            durable="poller-cancels",
            event_type=GenerationCancelRequested,
            handler=poller.on_cancel_requested,
            retry=ctx.retry,
        )

    async def on_startup(_: ServiceContext) -> None:
        await pollers[0].store.create_indexes()

    app = build_service(
        settings, setup=setup, on_startup=on_startup, tracer_provider=tracer_provider, registry=registry
    )
    served = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with served(a):  # connected and subscribed: now work the schedule
            pollers[0].scheduler.start()
            pollers[0].write_behind.start()
            try:
                yield
            finally:
                await pollers[0].scheduler.stop(min(SHUTDOWN_GRACE_S, settings.lease_s))
                await pollers[0].write_behind.stop()

    app.router.lifespan_context = lifespan
    return app
