"""Finished means finished, and broken polls end promptly with their own code.

- `compute_actual_credits` or `charges_filtered_jobs` raising: the job still ends with its result, the
  estimate is charged, and the log names the provider and the hook;
- a job first polled after its deadline that the provider finished long ago: `completed`;
- bad answers in a row end the job with their own code long before its deadline; an unreachable
  provider does not count;
- a poll slower than the ack wait keeps its message: no second poll of the job runs meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from conftest import PROVIDERS, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_provider_sdk import LoadedProvider, ProviderError, ProviderUnreachableError, Registry, discover
from pixsim_runtime.inprocess import serve
from support import api_client, create, mongo_db, wait_for, wait_ledger

pytestmark = pytest.mark.system

_sim = discover(PROVIDERS, include_entry_points=False, only=["sim"])
SimProvider, SIM = type(_sim.get("sim")), _sim.manifest("sim")


class BrokenHooks(SimProvider):  # type: ignore[misc, valid-type]
    def compute_actual_credits(self, generation, status, estimate):
        raise ZeroDivisionError("the pricing table has a hole")

    def charges_filtered_jobs(self) -> bool:
        raise RuntimeError("cannot say")


class GarbledPolls(SimProvider):  # type: ignore[misc, valid-type]
    """Every poll answer is unusable: alternately an SDK error and an adapter crash."""

    polls = 0

    async def check_status(self, account, provider_job_id, operation_type=None):
        type(self).polls += 1
        if self.polls % 2:
            raise ProviderError(
                "sim: answered HTTP 200 with half a JSON body", error_code="provider_bad_response"
            )
        raise KeyError("status")


class Unreachable(SimProvider):  # type: ignore[misc, valid-type]
    async def check_status(self, account, provider_job_id, operation_type=None):
        raise ProviderUnreachableError("sim: cannot reach it: ConnectError", maybe_received=False)


class SlowPolls(SimProvider):  # type: ignore[misc, valid-type]
    """Each poll takes longer than the poller's ack wait."""

    running = 0
    most = 0
    calls = 0

    async def check_status(self, account, provider_job_id, operation_type=None):
        cls = type(self)
        cls.running += 1
        cls.calls += 1
        cls.most = max(cls.most, cls.running)
        try:
            await asyncio.sleep(2.5)
            return await super().check_status(account, provider_job_id, operation_type)
        finally:
            cls.running -= 1


def _registry(cls: type) -> Registry:
    provider = cls()
    provider.attach_manifest(SIM)
    return Registry([LoadedProvider(SIM, provider, "tests/system (sim variant)")])


@asynccontextmanager
async def _system(servers: Any, db: str, poller_cls: type | None, **extra: Any) -> AsyncIterator[Any]:
    """Gateway, dispatcher and billing with the plain sim; the poller (if any) with `poller_cls`."""
    from pixsim_billing.app import BillingSettings
    from pixsim_billing.app import create_app as billing
    from pixsim_dispatcher.app import DispatcherSettings
    from pixsim_dispatcher.app import create_app as dispatcher
    from pixsim_gateway.app import GatewaySettings
    from pixsim_gateway.app import create_app as gateway

    settings = service_settings(servers, db=db, **extra)
    tp = TracerProvider()
    apps = [
        gateway(GatewaySettings(**settings), tracer_provider=tp, registry=_registry(SimProvider)),
        dispatcher(DispatcherSettings(**settings), tracer_provider=tp, registry=_registry(SimProvider)),
        billing(BillingSettings(**settings), tracer_provider=tp, registry=_registry(SimProvider)),
    ]
    if poller_cls is not None:
        apps.append(_poller(settings, poller_cls, tp))
    async with serve(*apps) as served, api_client(served[0].url) as api:
        yield api, settings


def _poller(settings: dict[str, Any], cls: type, tp: TracerProvider) -> Any:
    from pixsim_poller.app import PollerSettings
    from pixsim_poller.app import create_app as poller

    return poller(PollerSettings(**settings), tracer_provider=tp, registry=_registry(cls))


async def test_a_failing_hook_never_loses_a_finished_result(fresh_servers, sim_fake, caplog):
    caplog.set_level(logging.ERROR, logger="pixsim_poller")
    async with _system(fresh_servers, "hooks", BrokenHooks) as (api, _):
        done = await create(api, {"prompt": "finished", "duration": 3, "latency": 0.2})
        filtered = await create(
            api, {"prompt": "filtered", "duration": 2, "latency": 0.2, "outcome": "filter"}
        )
        body = await wait_for(api, done["id"])
        assert body["status"] == "completed", body
        assert body["result"]["video_url"] and body["credits"]["charged"] == {"sim": 3}
        assert (await wait_for(api, filtered["id"]))["status"] == "filtered"
        for gid, amount in ((done["id"], 3), (filtered["id"], 2)):
            entries = await wait_ledger(fresh_servers.mongo_url, "hooks", gid, {"reserved", "charged"})
            assert [(e["kind"], e["amount"]) for e in entries if e["kind"] != "reserved"] == [
                ("charged", amount)
            ]
    logged = caplog.text
    assert "provider sim: hook compute_actual_credits failed" in logged
    assert "provider sim: hook charges_filtered_jobs failed" in logged


async def test_a_job_first_polled_after_its_deadline_that_finished_completes(fresh_servers, sim_fake):
    async with _system(fresh_servers, "late", None, PIXSIM_JOB_TIMEOUT=1) as (api, settings):
        job = await create(api, {"prompt": "polled late", "duration": 1, "latency": 0.1})
        await wait_for(api, job["id"], {"submitted"})
        await asyncio.sleep(2)  # the deadline passes, with no poller running
        async with serve(_poller(settings, SimProvider, TracerProvider())):
            body = await wait_for(api, job["id"])
        assert body["status"] == "completed", body
        assert body["result"]["video_url"]


async def test_bad_answers_in_a_row_end_the_job_with_their_own_code(fresh_servers, sim_fake):
    async with _system(fresh_servers, "garbled", GarbledPolls, PIXSIM_POLL_MAX_BAD_ANSWERS=4) as (api, _):
        job = await create(api, {"prompt": "garbled", "duration": 1, "latency": 0.1})
        body = await wait_for(api, job["id"], timeout=20)  # the deadline is 15 minutes away
    assert body["status"] == "failed"
    assert body["error"]["code"] == "provider_bad_response", body
    assert "4 bad answers in a row" in body["error"]["message"]
    assert GarbledPolls.polls == 4
    ledger = mongo_db(fresh_servers.mongo_url, "garbled")["ledger"]
    assert await ledger.count_documents({"generation_id": job["id"], "kind": "released"}) == 1


async def test_an_unreachable_provider_is_waited_for_until_the_deadline(fresh_servers, sim_fake):
    extra = {"PIXSIM_POLL_MAX_BAD_ANSWERS": 2, "PIXSIM_JOB_TIMEOUT": 3}
    async with _system(fresh_servers, "unreachable", Unreachable, **extra) as (api, _):
        job = await create(api, {"prompt": "down", "duration": 1, "latency": 0.1})
        body = await wait_for(api, job["id"], timeout=20)
    assert body["status"] == "failed"
    assert body["error"]["code"] == "provider_timeout", body
    assert "provider_unavailable" in body["error"]["message"]  # the cause is not hidden


async def test_a_poll_slower_than_the_ack_wait_keeps_its_message(fresh_servers, sim_fake):
    extra = {"PIXSIM_POLL_ACK_WAIT": 1}
    async with _system(fresh_servers, "slow", SlowPolls, **extra) as (api, _):
        job = await create(api, {"prompt": "slow", "duration": 1, "latency": 0.1})
        body = await wait_for(api, job["id"], timeout=30)
    assert body["status"] == "completed"
    assert SlowPolls.most == 1, "the job was redelivered and polled twice at once"
