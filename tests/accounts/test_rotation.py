"""Rotation and health: a refusing account is marked with the reason and the job moves on or waits."""

from __future__ import annotations

import pytest
from accounts.kit import account_events, running, wait_all
from support import wait_for

pytestmark = pytest.mark.system


def _refused_by(dispatch: dict, account_id: str) -> bool:
    return any(t["account_id"] == account_id for t in dispatch.get("tried") or [])


async def test_an_account_answering_401_mid_run_is_marked_and_its_jobs_finish_elsewhere(
    fresh_servers, acct_fake
):
    acct_fake.accept_then_401["tok-a"] = 2  # the session expires after two jobs
    async with running(fresh_servers, acct_fake) as system:
        a = (await system.account("tok-a", priority=10, concurrency_limit=2, credits={"sim": 100}))["id"]
        b = (await system.account("tok-b", concurrency_limit=2, credits={"sim": 100}))["id"]
        gids = [await system.generate(prompt=f"mid-run {i}") for i in range(8)]
        done = await wait_all(system, gids)

        assert {d["status"] for d in done.values()} == {"completed"}
        on_a = {g for g, d in done.items() if d["account_id"] == a}
        assert len(on_a) == 2 and {d["account_id"] for g, d in done.items() if g not in on_a} == {b}
        dispatches = {d["_id"]: d for d in await system.db["dispatches"].find({}).to_list()}
        refused = {g for g in gids if _refused_by(dispatches[g], a)}
        assert refused and refused.isdisjoint(on_a)  # every job A refused completed on B
        assert sorted(acct_fake.accepted_prompts()) == sorted(
            f"mid-run {i}" for i in range(8)
        )  # each ran once
        assert any(s[1] == "tok-a" and s[2] == 401 for s in acct_fake.submits)

        view = await system.wait_account(a, lambda v: v["balances"]["sim"]["balance"] == 98)
        assert view["status"] == "auth_failed" and view["status_code"] == "provider_auth"
        assert "credentials rejected" in view["status_reason"] and view["balances"]["sim"]["available"] == 98
        ledger = (await system.api.get(f"/api/v1/accounts/{a}/ledger")).json()["items"]
        assert sorted(e["kind"] for e in ledger) == ["charged", "charged", "grant", "reserved", "reserved"]
        assert {
            e["generation_id"] for e in ledger if e["kind"] == "charged"
        } == on_a  # no charge for refused jobs
        changes = [
            e for e in await account_events(system.nats_url, a) if e["type"] == "account.status_changed"
        ]
        assert [c["status"] for c in changes] == ["auth_failed"]
        assert changes[0]["error_code"] == "provider_auth" and changes[0]["generation_id"] in refused


async def test_quota_exhaustion_marks_the_account_exhausted_and_moves_the_job(fresh_servers, acct_fake):
    acct_fake.quota_left["tok-q"] = 2  # the provider lets it spend 2 more credits, whatever we think
    async with running(fresh_servers, acct_fake) as system:
        a = (await system.account("tok-q", priority=10, concurrency_limit=5))["id"]
        b = (await system.account("tok-r", concurrency_limit=5))["id"]
        first = [await system.generate(prompt=f"quota {i}") for i in range(2)]
        assert {d["account_id"] for d in (await wait_all(system, first)).values()} == {a}
        third = await wait_for(system.api, await system.generate(prompt="quota 2"))
        assert third["status"] == "completed" and third["account_id"] == b
        view = await system.get(a)
        assert view["status"] == "exhausted" and view["status_code"] == "provider_quota"
        assert "no credits left" in view["status_reason"]
        # An exhausted account takes no more jobs; a pinned job cannot run on it and says so.
        pinned = await wait_for(system.api, await system.generate(prompt="pinned", account_id=a))
        assert pinned["status"] == "failed" and pinned["error"]["code"] == "pinned_account_unavailable"
        assert acct_fake.accepted_prompts().count("quota 2") == 1


async def test_a_rate_limited_account_cools_down_for_retry_after_then_runs_the_job(fresh_servers, acct_fake):
    acct_fake.rate_limited["tok-rl"], acct_fake.retry_after_s = 1, 1
    async with running(fresh_servers, acct_fake) as system:
        a = (await system.account("tok-rl"))["id"]
        done = await wait_for(system.api, await system.generate(prompt="patient"))
        assert done["status"] == "completed" and done["account_id"] == a
        tries = [(t, status) for t, token, status, _ in acct_fake.submits if token == "tok-rl"]
        assert [s for _, s in tries] == [429, 201]
        assert tries[1][0] - tries[0][0] >= 1.0  # it waited out Retry-After, and did not give up
        changes = [
            e for e in await account_events(system.nats_url, a) if e["type"] == "account.status_changed"
        ]
        assert [c["status"] for c in changes] == ["cooling_down", "active"]
        assert changes[0]["cooldown_until"] and changes[0]["error_code"] == "provider_rate_limit"
        assert changes[1]["reason"] == "cooldown over"
        assert (await system.get(a))["status"] == "active"


async def test_a_rate_limited_account_hands_the_job_to_another_at_once(fresh_servers, acct_fake):
    acct_fake.rate_limited["tok-busy"], acct_fake.retry_after_s = 1, 30
    async with running(fresh_servers, acct_fake) as system:
        a = (await system.account("tok-busy", priority=10))["id"]
        b = (await system.account("tok-free"))["id"]
        done = await wait_for(system.api, await system.generate(prompt="elsewhere"), timeout=10)
        assert done["status"] == "completed" and done["account_id"] == b
        view = await system.get(a)
        assert view["status"] == "cooling_down" and view["cooldown_until"]
