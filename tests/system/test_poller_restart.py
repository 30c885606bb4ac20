"""The poller survives its own death: SIGKILL it mid-flight, start another, every job still ends once."""

from __future__ import annotations

import os
import signal

import pytest
from conftest import build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_runtime.inprocess import serve
from support import api_client, mongo_db, wait_for, wait_ledger
from system.kit import start_service

pytestmark = pytest.mark.system


async def test_poller_killed_mid_flight_loses_no_job_and_charges_once(fresh_servers, sim_fake):
    settings = service_settings(fresh_servers, db="restart", PIXSIM_POLL_ACK_WAIT=2)
    env = {**os.environ, **{k: str(v) for k, v in settings.items()}}
    poller = await start_service("pixsim_poller", env)
    try:
        apps = build_apps(settings, TracerProvider(), roles=("gateway", "dispatcher", "billing"))
        async with serve(*apps) as served, api_client(served[0].url) as api:
            ids = []
            for i in range(6):
                resp = await api.post(
                    "/api/v1/generations",
                    json={
                        "provider_id": "sim",
                        "operation_type": "text_to_video",
                        "params": {"prompt": f"restart {i}", "duration": 2, "latency": 3},
                    },
                )
                ids.append(resp.json()["id"])
            for gid in ids:  # in flight: submitted, and the poller is already reporting progress
                await wait_for(api, gid, {"processing"})
            poller.send_signal(signal.SIGKILL)
            poller.wait(10)
            poller = await start_service("pixsim_poller", env)
            for gid in ids:
                assert (await wait_for(api, gid, timeout=60))["status"] == "completed"
            for gid in ids:
                await wait_ledger(fresh_servers.mongo_url, "restart", gid, {"reserved", "charged"})
            ledger = mongo_db(fresh_servers.mongo_url, "restart")["ledger"]
            for gid in ids:
                kinds = sorted(e["kind"] for e in await ledger.find({"generation_id": gid}).to_list())
                assert kinds == ["charged", "reserved"], (gid, kinds)
            balance = await mongo_db(fresh_servers.mongo_url, "restart")["balances"].find_one(
                {"_id": "system-sim:sim"}
            )
            assert (balance["reserved"], balance["spent"]) == (0, 2 * len(ids))
    finally:
        poller.send_signal(signal.SIGTERM)
        poller.wait(15)
