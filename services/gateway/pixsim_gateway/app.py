"""Composition root of the gateway: the HTTP API plus the projector that keeps its read models."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from pixsim_contracts import AnyCreditEvent, AnyGenerationEvent, GenerationCompleted, subjects
from pixsim_provider_sdk import Registry
from pixsim_runtime.consumers import PollAgain, subscribe
from pixsim_runtime.secrets import cipher_from_env
from pixsim_runtime.service import ServiceContext, build_service
from pixsim_runtime.storage import Storage

from . import api, api_keys, console
from .archive import Archiver
from .auth import Authenticator, AuthMiddleware
from .errors import install_error_handlers
from .limits import BodyLimitMiddleware, RateLimiter
from .oidc import OidcVerifier
from .projections import GENERATIONS, Projector, UnknownGeneration
from .settings import GatewaySettings
from .webhooks import Secrets, Sender, Subscriptions

SCHEDULED_DELIVERIES = 10_000
#: Events waiting for their `requested` hold a pending slot each; room for many, so that a backlog of them
#: never keeps the `requested` events behind them from being delivered.
PROJECTION_MAX_ACK_PENDING = 20_000


def create_app(
    settings: GatewaySettings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    registry: Registry | None = None,
) -> FastAPI:
    settings = settings or GatewaySettings()
    app = FastAPI(
        title="PixSim API",
        version="0.1.0",
        description="One API for AI video and image generation across many providers.",
    )
    install_error_handlers(app)

    def setup(ctx: ServiceContext) -> None:
        # One projector (one cache) for both projection consumers and the API's own writes.
        projector = Projector(ctx.db)

        async def project(event: Any, _msg: Any) -> None:
            try:
                await projector.apply(event)
            except UnknownGeneration:
                # Its `requested` may simply be behind: it travels on another consumer (the generations
                # stream, or the credits stream for a reservation), which can lag under load or after an
                # outage. Wait for it, on a schedule bounded by the event's age; then dead-letter it.
                age = (datetime.now(UTC) - event.occurred_at).total_seconds()
                if age < settings.orphan_event_wait_s:
                    raise PollAgain(min(max(age / 4, 0.2), 5.0)) from None
                raise

        # The projector, the archiver and the webhook sender retry on schedules bounded by their own
        # deadlines (PIXSIM_ORPHAN_EVENT_WAIT, PIXSIM_ARCHIVE_RETRY_FOR, PIXSIM_WEBHOOK_RETRY_FOR); the
        # delivery cap is only a backstop.
        scheduled = replace(ctx.retry, max_deliveries=SCHEDULED_DELIVERIES)
        for durable, subject, stream, event_type in (
            (
                "gateway-generations",
                subjects.GENERATION_SUBJECTS,
                subjects.GENERATIONS_STREAM,
                AnyGenerationEvent,
            ),
            ("gateway-credits", subjects.CREDIT_SUBJECTS, subjects.CREDITS_STREAM, AnyCreditEvent),
        ):
            subscribe(
                ctx.broker,
                service="gateway",
                subject=subject,
                stream=stream,
                durable=durable,
                event_type=event_type,
                handler=project,
                retry=scheduled,
                max_ack_pending=PROJECTION_MAX_ACK_PENDING,
            )
        cipher = cipher_from_env()
        storage = ctx.extras["storage"] = Storage.from_settings(settings)
        archiver = Archiver(
            ctx,
            storage,
            cipher,
            max_bytes=settings.result_max_bytes,
            retention_days=settings.result_retention_days,
            retry_s=settings.archive_retry_s,
            retry_max_s=settings.archive_retry_max_s,
            retry_for_s=settings.archive_retry_for_s,
        )
        subscribe(
            ctx.broker,
            service="gateway",
            subject=subjects.generation_events("completed"),
            stream=subjects.GENERATIONS_STREAM,
            durable="gateway-archiver",
            event_type=GenerationCompleted,
            handler=archiver.on_completed,
            retry=scheduled,
            batch_size=4,
            ack_wait_s=300.0,
        )
        limits = settings.role_limits()
        secrets = Secrets(ctx.db, cipher)
        subscriptions = Subscriptions(ctx.db, ttl_s=settings.webhook_subscription_cache_s)
        api.include_routers(
            app,
            ctx,
            settings,
            projector=projector,
            cipher=cipher,
            storage=storage,
            secrets=secrets,
            subscriptions=subscriptions,
        )
        sender = Sender(
            ctx.db,
            secrets,
            subscriptions,
            retry_s=settings.webhook_retry_s,
            retry_max_s=settings.webhook_retry_max_s,
            retry_for_s=settings.webhook_retry_for_s,
        )
        subscribe(
            ctx.broker,
            service="gateway",
            subject=subjects.GENERATION_SUBJECTS,
            stream=subjects.GENERATIONS_STREAM,
            durable="gateway-webhooks",
            event_type=AnyGenerationEvent,
            handler=sender.on_event,
            retry=scheduled,
            ack_wait_s=120.0,
        )
        console.mount(app, ctx.db, cipher, oidc=settings.oidc() is not None)  # the web console, at /
        # Outermost last: a request meets authentication (and its rate limit) first, then the body cap.
        app.add_middleware(
            BodyLimitMiddleware,
            max_bytes=settings.max_body_bytes,
            per_path={
                path: settings.upload_max_bytes + 64 * 1024  # + multipart framing
                for path in ("/api/v1/assets", console.UPLOAD_PATH)
            },
        )
        oidc = settings.oidc()
        app.add_middleware(
            AuthMiddleware,
            authenticator=Authenticator(
                ctx.db, OidcVerifier(oidc, refresh_min_s=settings.oidc_jwks_refresh_s) if oidc else None
            ),
            limiter=RateLimiter(ctx.db),
            limits=limits,
        )

    async def on_startup(ctx: ServiceContext) -> None:
        await ctx.db[GENERATIONS].create_index([("created_at", -1)])
        await ctx.db[GENERATIONS].create_index([("user_id", 1), ("status", 1)])
        if settings.bootstrap_admin_key:
            await api_keys.ensure_bootstrap_key(
                ctx.db, settings.bootstrap_admin_key, settings.bootstrap_admin_user
            )

    return build_service(
        settings,
        setup=setup,
        on_startup=on_startup,
        tracer_provider=tracer_provider,
        registry=registry,
        app=app,
    )
