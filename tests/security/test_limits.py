"""Per-user limits answer 429 with Retry-After and say which limit: request rate (shared by every
gateway replica), generations in flight (the count comes back as jobs end), and live event streams."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from pixsim_gateway.app import GatewaySettings
from pixsim_gateway.app import create_app as gateway
from pixsim_runtime.inprocess import serve
from support import wait_for

pytestmark = pytest.mark.system


async def user_key(secure, owner: str, **limits: float) -> str:
    resp = await secure.system.api.post(
        "/api/v1/keys", json={"name": f"{owner} limited", "owner": owner, "limits": limits}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["token"]


def client(url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def test_request_rate_is_limited_across_gateway_replicas(secure):
    token = await user_key(secure, "rate-user", rate=0.5, burst=3)
    from accounts.kit import registry  # a second gateway replica on the same NATS and MongoDB

    second = gateway(
        GatewaySettings(**secure.system.settings),
        tracer_provider=TracerProvider(),
        registry=registry(secure.fake.url),
    )
    async with serve(second) as served, client(secure.url, token) as one, client(served[0].url, token) as two:
        answers = [await (one if i % 2 else two).get("/api/v1/generations") for i in range(4)]
        assert [r.status_code for r in answers[:3]] == [200, 200, 200]
        refused = answers[3]
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert "rate" in refused.json()["error"]["message"]
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 3
        await asyncio.sleep(wait)
        assert (await one.get("/api/v1/generations")).status_code == 200  # the bucket refilled


async def test_generations_in_flight_are_limited_and_come_back_when_jobs_end(secure):
    token = await user_key(secure, "busy-user", max_in_flight=2)
    body = {
        "provider_id": "sim",
        "operation_type": "text_to_video",
        "params": {"prompt": "slow", "duration": 1, "latency": 30},
    }
    async with client(secure.url, token) as api:
        first = (await api.post("/api/v1/generations", json=body)).json()
        second = (await api.post("/api/v1/generations", json=body)).json()
        refused = await api.post("/api/v1/generations", json=body)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_in_flight"
        assert "in flight" in refused.json()["error"]["message"] and refused.headers["retry-after"]
        assert (await api.post(f"/api/v1/generations/{first['id']}/cancel")).status_code == 202
        await wait_for(api, first["id"])
        again = await api.post("/api/v1/generations", json=body)
        assert again.status_code == 202, again.text  # one ended: room for one more
        for gid in (second["id"], again.json()["id"]):
            await api.post(f"/api/v1/generations/{gid}/cancel")


async def test_event_streams_are_capped_per_user(secure):
    token = await user_key(secure, "stream-user")
    body = {
        "provider_id": "sim",
        "operation_type": "text_to_video",
        "params": {"prompt": "watch me", "duration": 1, "latency": 30},
    }
    async with client(secure.url, token) as api:
        gid = (await api.post("/api/v1/generations", json=body)).json()["id"]
        path = f"/api/v1/generations/{gid}/events"
        async with api.stream("GET", path) as a, api.stream("GET", path) as b:
            assert a.status_code == b.status_code == 200  # PIXSIM_SSE_MAX_PER_USER=2 in this system
            third = await api.get(path)
            assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_streams"
            assert third.headers["retry-after"]
        for _ in range(100):  # both closed: their slots come back as soon as the server sees them go
            async with api.stream("GET", path) as c:
                if c.status_code == 200:
                    break
            await asyncio.sleep(0.05)
        assert c.status_code == 200
        await api.post(f"/api/v1/generations/{gid}/cancel")
