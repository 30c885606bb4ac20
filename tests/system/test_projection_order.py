"""An event that reaches the read model before its generation's `requested` (they travel on different
consumers, which lag differently under load or after an outage) waits for it and is then projected: it is
not dead-lettered. Only an event whose `requested` never comes is, after PIXSIM_ORPHAN_EVENT_WAIT."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from conftest import build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_contracts import CreditsReserved, GenerationRequested, new_id
from pixsim_runtime.inprocess import serve
from support import api_client, dead_letters_since

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]


async def test_a_reservation_ahead_of_its_request_waits_for_it(fresh_servers):
    settings = service_settings(fresh_servers, db="projection_order", PIXSIM_ORPHAN_EVENT_WAIT=60)
    gid = new_id()
    reserved = CreditsReserved(
        generation_id=gid, provider_id="sim", account_id="sim-system", credit_type="sim", amount=3
    )
    requested = GenerationRequested(
        generation_id=gid,
        provider_id="sim",
        operation_type="text_to_video",
        params={"prompt": "late request"},
    )
    nc = await nats.connect(fresh_servers.nats_url)  # admin: this test plays the dispatcher and an upstream
    try:
        js = nc.jetstream()
        async with (
            serve(*build_apps(settings, TracerProvider(), roles=("gateway",))) as served,
            api_client(served[0].url) as api,
        ):
            await js.publish(
                reserved.subject,
                reserved.model_dump_json().encode(),
                headers={"Nats-Msg-Id": reserved.event_id},
            )
            await asyncio.sleep(4)  # longer than the test default wait (3 s): it must still be waiting
            assert (await api.get(f"/api/v1/generations/{gid}")).status_code == 404
            await js.publish(
                requested.subject,
                requested.model_dump_json().encode(),
                headers={"Nats-Msg-Id": requested.event_id},
            )
            for _ in range(200):
                body = (await api.get(f"/api/v1/generations/{gid}")).json()
                if body.get("credits", {}).get("reserved"):
                    break
                await asyncio.sleep(0.05)
            assert body["credits"]["reserved"] == {"sim": 3}, body
        assert [d for d in await dead_letters_since(js, "gateway") if gid in json.dumps(d)] == []
    finally:
        await nc.close()
