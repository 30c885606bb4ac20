"""What the event-bus tests share: the four services on a NATS and MongoDB of their own (authorization on),
clients connected as a given NATS user, the dead letters, and a snapshot of everything stored."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
from conftest import Servers, build_apps, service_settings
from nats.js.api import ConsumerConfig, DeliverPolicy
from opentelemetry.sdk.trace import TracerProvider
from pixsim_contracts import GenerationRequested, new_id, subjects
from pixsim_runtime import local_servers
from pixsim_runtime.bus_auth import DURABLES
from pixsim_runtime.inprocess import serve
from support import api_client, mongo_db, wait_consumer_idle


@asynccontextmanager
async def own_servers() -> AsyncIterator[Servers]:
    """A nats-server (authorization on) and nx-27017 of this module's own: counts and books are ours alone."""
    nats_server = local_servers.start_nats()
    mongo = local_servers.start_mongo()
    try:
        yield Servers(nats_server.url_as("admin"), mongo.url, nats_server.credentials)
    finally:
        nats_server.stop()
        mongo.stop()


@dataclass
class Bus:
    servers: Servers
    api: httpx.AsyncClient
    service_urls: dict[str, str]
    db: Any
    admin: nats.aio.client.Client

    async def connect(
        self, user: str | None, password: str | None = None, errors: list[str] | None = None
    ) -> nats.aio.client.Client:
        return await connect(self.servers, user, password, errors)


async def connect(
    servers: Servers, user: str | None, password: str | None = None, errors: list[str] | None = None
) -> nats.aio.client.Client:
    """A client as `user` (None: anonymous); `errors` collects what the server refused."""

    async def on_error(exc: Exception) -> None:
        if errors is not None:
            errors.append(str(exc))

    options: dict[str, Any] = servers.nats_options(user) if user else {}
    if password is not None:
        options["password"] = password
    return await nats.connect(
        servers.service_nats_url, error_cb=on_error, allow_reconnect=False, connect_timeout=5, **options
    )


@asynccontextmanager
async def running(servers: Servers, db: str = "bus") -> AsyncIterator[Bus]:
    # Events for unknown generations go straight to the dead letters here (these tests publish thousands).
    apps = build_apps(service_settings(servers, db=db, PIXSIM_ORPHAN_EVENT_WAIT=0), TracerProvider())
    async with serve(*apps) as served, api_client(served[0].url) as api:
        admin = await nats.connect(servers.nats_url)
        try:
            names = ("gateway", "dispatcher", "poller", "billing")
            yield Bus(
                servers,
                api,
                {n: s.url for n, s in zip(names, served, strict=True)},
                mongo_db(servers.mongo_url, db),
                admin,
            )
        finally:
            await admin.close()


async def wait_refused(errors: list[str], needle: str, timeout: float = 3) -> str:
    """The server's refusal naming `needle` (a subject), once it has arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # nats-py lower-cases the server's message
        found = [
            e for e in errors if "permissions violation" in e.lower() and f'"{needle.lower()}"' in e.lower()
        ]
        if found:
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no permissions violation for {needle!r}; errors: {errors}")


async def last_seq(nc: nats.aio.client.Client, stream: str) -> int:
    return (await nc.jetstream().stream_info(stream)).state.last_seq


async def dead_letters(nc: nats.aio.client.Client, after_seq: int = 0) -> list[dict[str, Any]]:
    """Every dead letter written after `after_seq` of the dead-letter stream."""
    js = nc.jetstream()
    last = await last_seq(nc, subjects.DLQ_STREAM)
    if last <= after_seq:
        return []
    sub = await js.subscribe(
        subjects.DLQ_SUBJECTS,
        stream=subjects.DLQ_STREAM,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1),
    )
    found = []
    try:
        while True:
            msg = await sub.next_msg(timeout=10)
            found.append(json.loads(msg.data))
            if msg.metadata.sequence.stream >= last:
                return found
    finally:
        await sub.unsubscribe()


async def wait_dead_letters(
    nc: nats.aio.client.Client, after_seq: int, want: int, timeout: float = 30
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        letters = await dead_letters(nc, after_seq)
        if len(letters) >= want or time.monotonic() > deadline:
            return letters
        await asyncio.sleep(0.1)


async def wait_all_idle(servers: Servers, timeout: float = 60) -> None:
    """Until every service's durable consumer has nothing pending and nothing unacknowledged."""
    for owned in DURABLES.values():
        for stream, durable in owned:
            await wait_consumer_idle(servers.nats_url, stream, durable, timeout=timeout)


async def snapshot(db: Any) -> dict[str, list[str]]:
    """Every stored document, per collection, as sorted JSON."""
    out = {}
    for name in sorted(await db.list_collection_names()):
        docs = await db[name].find({}).to_list()
        out[name] = sorted(json.dumps(d, sort_keys=True, default=str) for d in docs)
    return out


def requested(gid: str | None = None, **params: Any) -> GenerationRequested:
    gid = gid or new_id()
    return GenerationRequested(
        event_id=f"{gid}.requested",
        generation_id=gid,
        provider_id="sim",
        operation_type="text_to_video",
        params={"prompt": "a fox", "duration": 1, **params},
    )


async def publish_raw(
    nc: nats.aio.client.Client, subject: str, body: bytes, msg_id: str | None = None
) -> Any:
    """A JetStream publish of any bytes, as the given client."""
    return await nc.jetstream().publish(
        subject, body, timeout=10, headers={"Nats-Msg-Id": msg_id or new_id()}
    )


#: Longer than the poller's write-behind interval (at most 0.5 s).
SETTLE_S = 1.0


@dataclass
class Books:
    """What a test compares before and after: everything stored, and the generations' count."""

    stored: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    async def of(cls, db: Any) -> Books:
        return cls(await snapshot(db))

    @classmethod
    async def settled(cls, db: Any, timeout: float = 30) -> Books:
        """What is stored once it stops changing: the same in two looks `SETTLE_S` apart. Idle consumers are
        not enough: the poller takes finished jobs off its schedule and saves learned durations in
        batches, a moment after their events are out (`pixsim_poller.write_behind`)."""
        deadline = time.monotonic() + timeout
        books = await cls.of(db)
        while True:
            await asyncio.sleep(SETTLE_S)
            again = await cls.of(db)
            if again.stored == books.stored or time.monotonic() > deadline:
                return again
            books = again

    def changes(self, other: Books) -> dict[str, int]:
        """Per collection: documents added, removed or changed."""
        out = {}
        for name in sorted(set(self.stored) | set(other.stored)):
            before, after = set(self.stored.get(name, [])), set(other.stored.get(name, []))
            if before != after:
                out[name] = len(before ^ after)
        return out


#: Which services' consumers read a subject of each event kind (so each dead-letters an invalid message).
READERS = {
    "requested": {"dispatcher", "gateway"},
    "submitted": {"poller", "gateway"},
    "progressed": {"gateway"},
    "completed": {"dispatcher", "gateway"},
    "failed": {"dispatcher", "gateway"},
    "filtered": {"dispatcher", "gateway"},
    "cancelled": {"dispatcher", "gateway"},
    "cancel_requested": {"poller", "gateway"},
}


def readers(subject: str) -> set[str]:
    """The services whose consumers receive a message on `subject`."""
    family, kind = subject.split(".")[1], subject.rsplit(".", 1)[1]
    if family == "credits":
        return {"billing", "gateway"}
    if family == "generations":  # the gateway's projector reads every generation subject
        return READERS.get(kind, {"gateway"})
    return set()


async def letters_for(
    nc: nats.aio.client.Client, stream: str, seq: int, services: set[str], timeout: float = 30
) -> dict[str, dict[str, Any]]:
    """The dead letters of one message (stream, sequence), by service, once every one of `services` wrote its."""
    deadline = time.monotonic() + timeout
    while True:
        found = {
            d["service"]: d
            for d in await dead_letters(nc)
            if d["stream"] == stream and d["stream_seq"] == seq
        }
        if set(found) >= services or time.monotonic() > deadline:
            assert set(found) == services, (
                f"dead letters of {stream}#{seq}: {sorted(found)}, expected {sorted(services)}"
            )
            return found
        await asyncio.sleep(0.1)
