"""The gateway's MongoDB round trips for one generation (issue 11: at most 10 per generation across all
services): counted with a pymongo `CommandListener` on the gateway's own client, for a generation
POSTed through the API and then taken through the events the other services would publish (submitted,
completed; credits reserved and charged), projected, looked at by the webhook sender, and archived."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import nats
import pixsim_runtime.mongo
import pytest
from conftest import build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_contracts import (
    CreditsCharged,
    CreditsReserved,
    GenerationCompleted,
    GenerationSubmitted,
    OperationType,
    subjects,
)
from pixsim_provider_sdk.safe_fetch import allow_in_env
from pixsim_runtime.inprocess import serve
from pymongo import AsyncMongoClient
from support import Commands, api_client, wait_consumer_idle

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

VIDEO = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(256) * 4


@pytest.fixture
def cdn():
    """The provider's CDN (the outside world): serves a small MP4 under any path."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "video/mp4")
            self.send_header("content-length", str(len(VIDEO)))
            self.end_headers()
            self.wfile.write(VIDEO)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    allow_in_env(url)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield url
    server.shutdown()


async def one_generation(api: Any, js: Any, nats_url: str, checker: Any, cdn: str) -> str:
    """POST a generation, publish the rest of its events as the other services would, and wait until the
    gateway has projected, archived and looked at every one of them."""
    resp = await api.post(
        "/api/v1/generations",
        json={"provider_id": "sim", "operation_type": "text_to_video", "params": {"prompt": "a fox"}},
    )
    assert resp.status_code == 202, resp.text
    gid, user = resp.json()["id"], resp.json()["user_id"]
    common = {"generation_id": gid, "provider_id": "sim", "account_id": "system-sim"}
    events = [
        CreditsReserved(**common, credit_type="sim", amount=1),
        GenerationSubmitted(
            **common,
            operation_type=OperationType.TEXT_TO_VIDEO,
            provider_job_id=f"job-{gid}",
            deadline_at=datetime(2099, 1, 1, tzinfo=UTC),
            user_id=user,
        ),
        CreditsCharged(**common, credit_type="sim", amount=1, reserved=1),
        GenerationCompleted(**common, result={"video_url": f"{cdn}/{gid}.mp4"}),
    ]
    for event in events:
        await js.publish(
            event.subject, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.event_id}
        )
    deadline = time.monotonic() + 30
    while True:  # read with the test's own client: not counted
        doc = await checker["generations"].find_one({"_id": gid})
        archive = await checker["archives"].find_one({"_id": gid})
        if doc and len(doc["applied"]) == 5 and (archive or {}).get("status") == "archived":
            break
        assert time.monotonic() < deadline, (doc, archive)
        await asyncio.sleep(0.05)
    for stream, durable in (
        (subjects.GENERATIONS_STREAM, "gateway-generations"),
        (subjects.CREDITS_STREAM, "gateway-credits"),
        (subjects.GENERATIONS_STREAM, "gateway-webhooks"),
        (subjects.GENERATIONS_STREAM, "gateway-archiver"),
    ):
        await wait_consumer_idle(nats_url, stream, durable)
    return gid


async def test_a_generation_costs_the_gateway_at_most_ten_round_trips(fresh_servers, cdn, monkeypatch):
    commands = Commands()
    # Only the gateway's client carries the listener (its one client comes from make_mongo).
    monkeypatch.setattr(
        pixsim_runtime.mongo,
        "AsyncMongoClient",
        functools.partial(AsyncMongoClient, event_listeners=[commands]),
    )
    db = "round_trips"
    settings = service_settings(fresh_servers, db=db)
    checker = AsyncMongoClient(fresh_servers.mongo_url, tz_aware=True)[db]
    nc = await nats.connect(fresh_servers.nats_url)  # admin: the test plays the other services
    js = nc.jetstream()
    try:
        async with (
            serve(*build_apps(settings, TracerProvider(), roles=("gateway",))) as served,
            api_client(served[0].url) as api,
        ):
            # A first generation takes the start-up work (indexes, the first archive sweep) out of the count.
            await one_generation(api, js, fresh_servers.nats_url, checker, cdn)
            before = commands.snapshot()
            await one_generation(api, js, fresh_servers.nats_url, checker, cdn)
            after = commands.snapshot()
    finally:
        await nc.close()
        await checker.client.close()
    used = after - before
    print("gateway round trips for one generation:", dict(used.most_common()), "total", used.total())
    assert used["find generations"] == 0, used
    assert used["find webhook_subscriptions"] == 0, used
    assert used["find archives"] == 0, used
    assert used.total() <= 10, used
