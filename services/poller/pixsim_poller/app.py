"""Composition root of the poller."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from pixsim_contracts import GenerationCancelRequested, GenerationSubmitted, subjects
from pixsim_provider_sdk import Registry
from pixsim_runtime.consumers import RetryPolicy, subscribe
from pixsim_runtime.secrets import cipher_from_env
from pixsim_runtime.service import ServiceContext, build_service

from .poll import Poller
from .settings import PollerSettings


def create_app(
    settings: PollerSettings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    registry: Registry | None = None,
) -> FastAPI:
    settings = settings or PollerSettings()

    def setup(ctx: ServiceContext) -> None:
        poller = Poller(ctx, settings, cipher_from_env())
        # Redeliveries are the polling schedule here, so the delivery count is no error count:
        # a job is bounded by its deadline instead, and only real errors count towards the DLQ.
        subscribe(
            ctx.broker, service="poller", subject=subjects.generation_events("submitted"),
            stream=subjects.GENERATIONS_STREAM, durable="poller", event_type=GenerationSubmitted,
            handler=poller.on_submitted, retry=RetryPolicy(max_attempts=10_000, first_delay=settings.retry_backoff),
            batch_size=settings.batch_size, ack_wait_s=settings.ack_wait_s,
            keep_alive_s=min(settings.keep_alive_s, settings.ack_wait_s / 3),
        )
        subscribe(
            ctx.broker, service="poller", subject=subjects.generation_events("cancel_requested"),
            stream=subjects.GENERATIONS_STREAM, durable="poller-cancels", event_type=GenerationCancelRequested,
            handler=poller.on_cancel_requested, retry=ctx.retry,
        )

    return build_service(settings, setup=setup, tracer_provider=tracer_provider, registry=registry)
