"""Provider rate limits hold across replicas: a burst of jobs through two dispatchers and two pollers
never calls the provider faster than its configured submits and status calls per second, in total
and per account (counted where it matters: at the provider's fake)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from conftest import build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_runtime.inprocess import serve
from support import api_client, wait_for

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

RATES = {"submit_per_s": 5, "status_per_s": 8, "account_submit_per_s": 2, "burst": 1}
ACCOUNTS, JOBS_EACH = 3, 6


#: Seconds a call admitted on time may take to reach the fake on a loaded machine (the bound allows for it).
JITTER_S = 0.5


def _worst_excess(times: list[float], rate: float, burst: int, jitter: float = JITTER_S) -> float:
    """How far the calls exceed GCRA's bound (at most `burst + rate * (span + jitter)` calls in any span of
    time); <= 0 means they kept to the rate."""
    times = sorted(times)
    return max(
        (j - i + 1) - (burst + rate * (times[j] - times[i] + jitter))
        for i in range(len(times))
        for j in range(i, len(times))
    )


async def test_a_burst_never_calls_the_provider_faster_than_its_limits(fresh_servers, sim_fake, monkeypatch):
    monkeypatch.setenv("PIXSIM_SIM_RATE_LIMITS", json.dumps(RATES))
    settings = service_settings(fresh_servers, db="provider_rates")
    roles = ("gateway", "dispatcher", "dispatcher", "poller", "poller", "billing")
    async with (
        serve(*build_apps(settings, TracerProvider(), roles=roles)) as served,
        api_client(served[0].url) as api,
    ):
        tokens = [f"tok-rate-{i}" for i in range(ACCOUNTS)]
        accounts = []
        for token in tokens:
            resp = await api.post(
                "/api/v1/accounts",
                json={"provider_id": "sim", "raw_data": {"token": token}, "concurrency_limit": 20},
            )
            assert resp.status_code == 201, resp.text
            accounts.append(resp.json()["id"])
        start = len(sim_fake.requests)
        gids = []
        for n in range(JOBS_EACH):
            for account in accounts:
                resp = await api.post(
                    "/api/v1/generations",
                    json={
                        "provider_id": "sim",
                        "operation_type": "text_to_video",
                        "account_id": account,
                        "params": {"prompt": f"burst {n}", "duration": 1, "latency": 1.5},
                    },
                )
                assert resp.status_code == 202, resp.text
                gids.append(resp.json()["id"])
        done = await asyncio.gather(*(wait_for(api, gid, timeout=120) for gid in gids))
    assert [d["status"] for d in done] == ["completed"] * len(gids)

    calls: list[Any] = sim_fake.requests[start:]
    submits = [c for c in calls if c.method == "POST" and c.path == "/v1/jobs"]
    polls = [c for c in calls if c.method == "GET" and c.path.startswith("/v1/jobs/job_")]
    assert len(submits) == len(gids) and len(polls) >= len(gids)
    assert _worst_excess([c.at for c in submits], RATES["submit_per_s"], RATES["burst"]) <= 0
    assert _worst_excess([c.at for c in polls], RATES["status_per_s"], RATES["burst"]) <= 0
    for token in tokens:
        mine = [c.at for c in submits if c.headers.get("authorization") == f"Bearer {token}"]
        assert len(mine) == JOBS_EACH
        # An account's turn comes before the provider-wide one, which may hold the call up to one provider
        # interval more: the per-account bound allows for that too.
        jitter = JITTER_S + 1 / RATES["submit_per_s"]
        assert _worst_excess(mine, RATES["account_submit_per_s"], RATES["burst"], jitter) <= 0
    # The limits did bind (else this test proves nothing): unpaced, the submits would all land within ~1 s.
    span = max(c.at for c in submits) - min(c.at for c in submits)
    assert span >= (len(submits) - 2) / RATES["submit_per_s"], span
