"""Pinned accounts are honoured (the job waits for them) and jobs that can never run fail with a clear code."""

from __future__ import annotations

import time

import pytest
from accounts.kit import running
from support import wait_for

pytestmark = pytest.mark.system


async def test_a_job_pinned_to_a_busy_account_waits_for_it(fresh_servers, acct_fake):
    async with running(fresh_servers, acct_fake) as system:
        busy = (await system.account("tok-busy", concurrency_limit=1))["id"]
        idle = (await system.account("tok-idle", priority=10, concurrency_limit=5))["id"]
        first = await system.generate(prompt="long", latency=1.0, account_id=busy)
        await wait_for(system.api, first, {"submitted", "processing"})
        second = await system.generate(prompt="pinned", account_id=busy)
        free = await system.generate(prompt="free")
        assert (await wait_for(system.api, free))["account_id"] == idle  # the others are not held up
        assert (await wait_for(system.api, second))["account_id"] == busy
        times = {prompt: t for t, _, status, prompt in acct_fake.submits if status == 201}
        assert times["pinned"] - times["long"] >= 1.0  # it ran on its account once that was free
        assert (await wait_for(system.api, first))["status"] == "completed"


async def test_jobs_that_can_never_run_fail_at_once_with_a_clear_code(fresh_servers, acct_fake):
    async with running(fresh_servers, acct_fake) as system:
        off = (await system.account("tok-off"))["id"]
        resp = await system.api.patch(f"/api/v1/accounts/{off}", json={"enabled": False})
        assert (
            resp.status_code == 200
            and resp.json()["status"] == "disabled"
            and resp.json()["enabled"] is False
        )
        started = time.monotonic()
        cases = {
            "pinned to a disabled account": (off, "pinned_account_unavailable", "disabled"),
            "pinned to an unknown account": ("acc_nope", "pinned_account_unavailable", "does not exist"),
            "no usable account at all": (None, "no_account_available", "disabled"),
        }
        for pin, code, words in cases.values():
            done = await wait_for(system.api, await system.generate(account_id=pin))
            assert done["status"] == "failed" and done["error"]["code"] == code, done
            assert words in done["error"]["message"]
        assert time.monotonic() - started < 5  # no waiting for what can never happen
        assert not acct_fake.submits


async def test_a_job_no_account_can_take_before_its_deadline_fails_with_no_account_available(
    fresh_servers, acct_fake
):
    async with running(fresh_servers, acct_fake, PIXSIM_DISPATCH_TIMEOUT=1.0) as system:
        account = (await system.account("tok-full", concurrency_limit=1))["id"]
        await system.generate(prompt="hog", latency=5)
        started = time.monotonic()
        done = await wait_for(system.api, await system.generate(prompt="late"))
        assert done["status"] == "failed" and done["error"]["code"] == "no_account_available"
        assert "no free slot" in done["error"]["message"] and 0.8 <= time.monotonic() - started < 5
        assert "late" not in acct_fake.accepted_prompts()
        assert (await system.get(account))["slots_in_use"] == 1  # the hog still runs
