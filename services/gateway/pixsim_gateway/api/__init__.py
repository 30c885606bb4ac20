"""The HTTP API at `/api/v1`: one module per resource, each a `router(...)` factory; `include_routers`
adds them all to the app."""

from __future__ import annotations

from fastapi import FastAPI
from pixsim_runtime.secrets import CredentialCipher
from pixsim_runtime.service import ServiceContext
from pixsim_runtime.storage import Storage

from ..limits import StreamSlots
from ..projections import Projector
from ..settings import GatewaySettings
from ..webhooks import Secrets, Subscriptions
from . import accounts, assets, estimates, generations, keys, providers, webhooks


def include_routers(
    app: FastAPI,
    ctx: ServiceContext,
    settings: GatewaySettings,
    *,
    projector: Projector,
    cipher: CredentialCipher,
    storage: Storage,
    secrets: Secrets,
    subscriptions: Subscriptions,
) -> None:
    slots = StreamSlots(settings.sse_max_per_user, settings.sse_max_total)
    app.include_router(
        generations.router(
            ctx,
            projector,
            settings.sse_keepalive_s,
            cipher,
            settings.role_limits(),
            slots,
            storage,
            subscriptions,
        )
    )
    app.include_router(providers.router(ctx.registry))
    app.include_router(estimates.router(ctx.registry))
    app.include_router(accounts.router(ctx, cipher))
    app.include_router(keys.router(ctx))
    app.include_router(webhooks.router(ctx.db, secrets))
    app.include_router(assets.router(ctx.db, storage, settings.upload_max_bytes))
