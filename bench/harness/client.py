"""The bench's own connections to a running system: NATS as `admin` (stream counts, the event tracker) and
as `upstream` (the NATS submit path), the gateway's API with the bootstrapped admin key, and MongoDB
(balances; created before any command listener, so never counted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
import nats
from pymongo import AsyncMongoClient

from .load import DB_NAME, Tracker, consumer_backlogs, submitter
from .phase import Target


@dataclass
class Client:
    nc: Any
    js: Any
    upstream_js: Any
    api: httpx.AsyncClient
    db: Any
    tracker: Tracker

    def target(self, mode: str, pids: dict[str, int]) -> Target:
        return Target(
            submitter(mode, self.api, self.upstream_js), self.js, self.api, self.db, self.tracker, pids
        )

    async def settle(self, timeout: float = 120.0, quiet_s: float = 1.0) -> bool:
        """Wait until no pipeline consumer has anything pending (what an earlier phase left behind)."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            if any((await consumer_backlogs(self.js)).values()):
                quiet_since = None
            else:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= quiet_s:
                    return True
            await asyncio.sleep(0.25)
        return False


@asynccontextmanager
async def attach(
    nats_server: Any, mongo: AsyncMongoClient, gateway_url: str, api_key: str, concurrency: int = 20
) -> AsyncIterator[Client]:
    """`mongo`: the bench's own client, made before any in-process command listener (closed on the way out)."""
    nc = await nats.connect(nats_server.url_as("admin"))
    upstream = await nats.connect(nats_server.url, **nats_server.credentials.connect_options("upstream"))
    limits = httpx.Limits(max_connections=concurrency + 5, max_keepalive_connections=concurrency + 5)
    tracker = Tracker()
    await tracker.start(nc)
    try:
        async with httpx.AsyncClient(
            base_url=gateway_url, timeout=60, limits=limits, headers={"Authorization": f"Bearer {api_key}"}
        ) as api:
            yield Client(nc, nc.jetstream(), upstream.jetstream(), api, mongo[DB_NAME], tracker)
    finally:
        for conn in (upstream, nc):
            with suppress(Exception):
                await conn.close()
        await mongo.close()


def attach_system(system: Any, concurrency: int = 20) -> Any:
    """`attach` to a `System` of real processes."""
    mongo = AsyncMongoClient(system.servers.mongo.url, tz_aware=True)
    return attach(system.servers.nats, mongo, system.gateway_url, system.admin_key, concurrency)
