"""The shape every PixSim service process shares: a FastAPI app with health probes whose lifespan
connects NATS and MongoDB, declares the streams, loads the providers and starts the subscribers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from faststream.nats import NatsBroker
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from pixsim_provider_sdk import Registry, discover
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from .broker import make_broker
from .consumers import DURABLES, RetryPolicy
from .instrumentation import instrument_provider, set_pending
from .mongo import make_mongo
from .rate_limits import ProviderPacer
from .settings import BaseServiceSettings
from .streams import ensure_streams
from .telemetry import init_telemetry, instrumented

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    """What a service's handlers are built from; created once, in `build_service`."""

    settings: BaseServiceSettings
    broker: NatsBroker
    mongo: AsyncMongoClient
    db: AsyncDatabase
    registry: Registry
    tracer_provider: TracerProvider
    pacer: ProviderPacer  # the provider calls' rate limits: `await ctx.pacer.turn(...)` before each
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.settings.max_attempts, first_delay=self.settings.retry_backoff)


Setup = Callable[[ServiceContext], None]
Startup = Callable[[ServiceContext], Awaitable[None]]


def build_service(
    settings: BaseServiceSettings,
    *,
    setup: Setup,
    on_startup: Startup | None = None,
    background: Sequence[Startup] = (),
    tracer_provider: TracerProvider | None = None,
    registry: Registry | None = None,
    app: FastAPI | None = None,
) -> FastAPI:
    """Build the service. `setup(ctx)` registers subscribers and routes; nothing connects until start-up.
    `background` loops run from start-up (after the subscribers) until shutdown."""
    tracer_provider = tracer_provider or init_telemetry(settings.service_name)
    broker = make_broker(settings, tracer_provider)
    mongo, db = make_mongo(settings)
    if registry is None:
        registry = discover(Path(settings.providers_dir))
    for loaded in registry:
        instrument_provider(loaded.provider)
    ctx = ServiceContext(settings, broker, mongo, db, registry, tracer_provider, ProviderPacer(db, registry))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.connect()
        await ensure_streams(broker.connection.jetstream(), settings.stream_replicas)
        if on_startup is not None:
            await on_startup(ctx)
        await broker.start()
        lag = asyncio.create_task(_watch_consumer_lag(broker))
        loops = [asyncio.create_task(loop(ctx)) for loop in background]
        log.info(
            "%s started (providers: %s%s)",
            settings.service_name,
            ", ".join(registry.ids()) or "none",
            "".join(f"; disabled: {d.id} ({d.origin})" for d in registry.disabled),
        )
        try:
            yield
        finally:
            for task in (lag, *loops):
                task.cancel()
            await broker.stop()
            await registry.aclose()
            await mongo.close()

    app = app or FastAPI(title=f"PixSim {settings.service_name}")
    app.router.lifespan_context = lifespan
    app.state.ctx = ctx
    _add_health_routes(app, ctx)
    setup(ctx)
    if instrumented(tracer_provider):  # server spans and metrics cost ~6% of a request's CPU
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tracer_provider, excluded_urls="healthz,readyz"
        )
    return app


async def _watch_consumer_lag(broker: NatsBroker, every_s: float = 5.0) -> None:
    """Feed the queue-lag gauge: messages each of this service's durables has not acked yet."""
    js = broker.connection.jetstream()
    while True:
        for stream, durable in DURABLES.get(broker, []):
            try:
                info = await js.consumer_info(stream, durable)
                set_pending(stream, durable, info.num_pending + info.num_ack_pending)
            except Exception as exc:  # noqa: BLE001 - a metric must never take the service down
                log.debug("consumer_info %s/%s failed: %s", stream, durable, exc)
        await asyncio.sleep(every_s)


def _add_health_routes(app: FastAPI, ctx: ServiceContext) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """The process is alive (never checks NATS: a NATS outage must not restart every pod)."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """NATS and MongoDB answer."""
        checks = {"nats": False, "mongo": False}
        try:
            checks["nats"] = bool(ctx.broker.connection and ctx.broker.connection.is_connected)
        except Exception:  # noqa: BLE001 - not connected yet
            checks["nats"] = False
        try:
            await asyncio.wait_for(ctx.db.command("ping"), 2)
            checks["mongo"] = True
        except Exception:  # noqa: BLE001 - any failure means not ready
            checks["mongo"] = False
        ok = all(checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503)


def run(app: FastAPI, settings: BaseServiceSettings) -> None:
    """Serve the service until SIGTERM/SIGINT."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="warning", access_log=False)
