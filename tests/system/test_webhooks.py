"""Webhooks: signed per Standard Webhooks with the user's secret, retried until the receiver is up (with
the same `webhook-id`), never sent to an internal address, and visible through the API."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pixsim_gateway.webhooks import SUBSCRIPTIONS
from pixsim_provider_sdk.safe_fetch import allow_in_env
from standardwebhooks import Webhook
from support import create, mongo_db, wait_for

pytestmark = pytest.mark.system


class Receiver:
    """A webhook receiver as the README shows it: verifies each delivery; fails the first `fail` ones."""

    def __init__(self, secret: str, fail: int = 0) -> None:
        receiver = self
        self.verifier = Webhook(secret)
        self.fail = fail
        self.attempts: list[dict[str, str]] = []  # headers of every request
        self.accepted: list[tuple[str, dict[str, Any]]] = []  # (webhook-id, verified payload)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.attempts.append(headers)
                payload = receiver.verifier.verify(body, headers)  # raises on a bad signature
                if receiver.fail:
                    receiver.fail -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.accepted.append((headers["webhook-id"], payload))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pixsim"
        allow_in_env(self.url)  # the operator's allow-list: loopback is refused otherwise
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


async def secret(api) -> str:
    resp = await api.get("/api/v1/webhooks/secret")
    assert resp.status_code == 200 and resp.json()["key"].startswith("whsec_")
    return resp.json()["key"]


async def until(check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_every_delivery_is_signed_and_the_filter_is_honoured(pipeline):
    receiver = Receiver(await secret(pipeline.api))
    gen = await create(
        pipeline.api,
        # 2 s at the provider (the sim's `latency`): long enough for a progress poll before its end,
        # whatever the shared pipeline has learned of the sim's durations
        {"prompt": "a fox", "duration": 1, "latency": 2},
        webhook_url=receiver.url,
        webhook_events_filter=["start", "progress", "completed"],
    )
    assert (await wait_for(pipeline.api, gen["id"]))["status"] == "completed"
    wanted = {"generation.submitted", "generation.progressed", "generation.completed"}
    # deliveries are concurrent and retried independently, so their order is not promised (as in the spec)
    await until(lambda: wanted <= {p["type"] for _, p in receiver.accepted})
    types = [p["type"] for _, p in receiver.accepted]
    assert "generation.requested" not in types
    completed = next(p for _, p in receiver.accepted if p["type"] == "generation.completed")
    assert completed["data"]["generation_id"] == gen["id"] and completed["data"]["result"]["video_url"]
    assert len({wid for wid, _ in receiver.accepted}) == len(receiver.accepted)
    forged = Webhook("whsec_" + "A" * 44)
    with pytest.raises(Exception):  # noqa: B017 - a receiver with another secret refuses them all
        forged.verify(json.dumps(completed), receiver.attempts[-1])
    receiver.server.shutdown()


async def test_a_receiver_that_fails_three_times_gets_the_event_once_with_the_same_id(pipeline):
    receiver = Receiver(await secret(pipeline.api), fail=3)
    gen = await create(
        pipeline.api,
        {"prompt": "a fox", "duration": 1},
        webhook_url=receiver.url,
        webhook_events_filter=["completed"],
    )
    await wait_for(pipeline.api, gen["id"])
    await until(lambda: receiver.accepted)
    await asyncio.sleep(0.5)  # nothing more arrives
    assert [p["type"] for _, p in receiver.accepted] == ["generation.completed"]
    assert len(receiver.attempts) == 4 and len({h["webhook-id"] for h in receiver.attempts}) == 1
    deliveries = (await pipeline.api.get(f"/api/v1/generations/{gen['id']}/webhook-deliveries")).json()[
        "items"
    ]
    assert len(deliveries) == 1 and deliveries[0]["status"] == "delivered"
    assert deliveries[0]["id"] == receiver.accepted[0][0]
    assert [a["status_code"] for a in deliveries[0]["attempts"]] == [500, 500, 500, 204]
    receiver.server.shutdown()


async def test_a_webhook_given_to_the_next_generation_receives_its_events(pipeline):
    """The sender knows a generation has no subscription without asking; that never hides the next one's."""
    receiver = Receiver(await secret(pipeline.api))
    plain = await create(pipeline.api, {"prompt": "no webhook", "duration": 1})
    assert (await wait_for(pipeline.api, plain["id"]))["status"] == "completed"
    gen = await create(
        pipeline.api,
        {"prompt": "a fox", "duration": 1},
        webhook_url=receiver.url,
        webhook_events_filter=["start", "completed"],
    )
    await wait_for(pipeline.api, gen["id"])
    wanted = {"generation.submitted", "generation.completed"}
    await until(lambda: {p["type"] for _, p in receiver.accepted} >= wanted)
    assert {p["data"]["generation_id"] for _, p in receiver.accepted} == {gen["id"]}
    receiver.server.shutdown()


async def test_a_deleted_subscription_stops_receiving_events(pipeline):
    """Deleted in the database (as an operator, or another replica, would): within the subscription cache
    time (PIXSIM_WEBHOOK_SUBSCRIPTION_CACHE, 0.5 s in the tests) no more deliveries are made."""
    receiver = Receiver(await secret(pipeline.api))
    gen = await create(
        pipeline.api,
        {"prompt": "a slow fox", "duration": 1, "latency": 3},
        webhook_url=receiver.url,
        webhook_events_filter=["start", "completed"],
    )
    await until(lambda: receiver.accepted)
    db = mongo_db(pipeline.servers.mongo_url, pipeline.db_name)
    try:
        assert (await db[SUBSCRIPTIONS].delete_one({"_id": gen["id"]})).deleted_count == 1
    finally:
        await db.client.close()
    assert (await wait_for(pipeline.api, gen["id"]))["status"] == "completed"  # about 3 s later
    await asyncio.sleep(1.0)
    assert [p["type"] for _, p in receiver.accepted] == ["generation.submitted"]
    receiver.server.shutdown()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7/hook",
        "http://[::1]:9/hook",
        "file:///etc/passwd",
        "http://localhost/hook",
    ],
)
async def test_an_internal_webhook_url_is_refused(pipeline, url):
    resp = await pipeline.api.post(
        "/api/v1/generations",
        json={
            "provider_id": "sim",
            "operation_type": "text_to_video",
            "params": {"prompt": "x", "duration": 1},
            "webhook_url": url,
        },
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "webhook_url_refused"
