"""Credits: the balance gate at selection, low/exhausted announcements, top-ups, sync, and the ledger API."""

from __future__ import annotations

from datetime import datetime

import pytest
from accounts.kit import account_events, running
from pixsim_contracts import AnyAccountEvent
from pixsim_runtime.accounts import AGGREGATE_FIELDS, fold
from support import wait_for

pytestmark = pytest.mark.system


def _same_aggregate(replayed: dict, stored: dict) -> bool:
    """The event-owned fields agree; times to within the millisecond a database keeps."""

    def seconds(value):
        return value.timestamp() if isinstance(value, datetime) else value

    for key in AGGREGATE_FIELDS:
        a, b = seconds(replayed.get(key)), seconds(stored.get(key))
        if key != "credentials" and not (a == b or (isinstance(a, float) and abs(a - b) < 0.002)):
            return False
    return True


def _types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


async def test_selection_respects_available_balance_and_balances_announce_low_and_exhausted(
    fresh_servers, acct_fake
):
    async with running(fresh_servers, acct_fake) as system:
        poor = (await system.account("tok-poor", priority=10, concurrency_limit=5, credits={"sim": 3}))["id"]
        rich = (await system.account("tok-rich", concurrency_limit=5, credits={"sim": 100}))["id"]
        await system.wait_account(poor, lambda v: v["balances"].get("sim", {}).get("balance") == 3)
        first = await system.generate(prompt="two", duration=2, latency=1.0)
        assert (await wait_for(system.api, first, {"submitted", "processing"}))["account_id"] == poor
        # 3 - 2 held = 1 available < 2: the next job goes to the other account although it ranks lower.
        second = await wait_for(system.api, await system.generate(prompt="two more", duration=2))
        assert second["account_id"] == rich
        assert (await wait_for(system.api, first))["status"] == "completed"
        third = await wait_for(system.api, await system.generate(prompt="last one", duration=1))
        assert third["account_id"] == poor
        view = await system.wait_account(poor, lambda v: v["status"] == "exhausted")
        assert view["balances"]["sim"] == {
            "balance": 0,
            "reserved": 0,
            "available": 0,
            "spent": 3,
            "tracked": True,
        }
        assert view["status_reason"] == "no credits left (sim=0)"

        top_up = await system.api.post(
            f"/api/v1/accounts/{poor}/credits", json={"credit_type": "sim", "amount": 5}
        )
        assert top_up.status_code == 202
        view = await system.wait_account(poor, lambda v: v["status"] == "active")
        assert view["balances"]["sim"]["balance"] == 5 and "credits available again" in view["status_reason"]
        # More than the account will ever have for a pinned job: it fails at once instead of waiting.
        never = await wait_for(system.api, await system.generate(prompt="big", duration=7, account_id=poor))
        assert (
            never["error"]["code"] == "pinned_account_unavailable" and "needs 7" in never["error"]["message"]
        )

        events = await account_events(system.nats_url, poor)
        assert _types(events).count("account.credits_low") == 1  # announced once, when it fell to 3
        assert _types(events).count("account.exhausted") == 1
        statuses = [e["status"] for e in events if e["type"] == "account.status_changed"]
        assert statuses == ["exhausted", "active"]
        replayed: dict = {"_id": poor}  # the stream alone rebuilds the account (credentials aside)
        for event in events:
            replayed = fold(replayed, AnyAccountEvent.validate_python(event))
        stored = await system.db["accounts"].find_one({"_id": poor})
        assert _same_aggregate(replayed, stored), (replayed, stored)
        ledger = (await system.api.get(f"/api/v1/accounts/{poor}/ledger")).json()["items"]
        assert [(e["kind"], e["amount"]) for e in ledger][:1] == [("grant", 5)]  # newest first
        assert sum(e["balance_change"] for e in ledger) == 5


async def test_undeclared_credit_types_are_refused(fresh_servers, acct_fake):
    async with running(fresh_servers, acct_fake) as system:
        resp = await system.api.post(
            "/api/v1/accounts",
            json={"provider_id": "acct", "raw_data": {"token": "t"}, "credits": {"gold": 5}},
        )
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "credit_type_not_declared"
        account = (await system.account("tok-x"))["id"]
        resp = await system.api.post(
            f"/api/v1/accounts/{account}/credits", json={"credit_type": "gold", "amount": 1}
        )
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "credit_type_not_declared"


async def test_sync_books_the_difference_as_an_adjustment(fresh_servers, acct_fake):
    async with running(fresh_servers, acct_fake) as system:
        known = (await system.account("tok-known", credits={"sim": 50}))["id"]
        unknown = (await system.account("tok-unknown"))["id"]
        for account, prompt in ((known, "spend"), (unknown, "spend too")):
            await wait_for(system.api, await system.generate(prompt=prompt, duration=3, account_id=account))
        await system.wait_account(known, lambda v: v["balances"]["sim"]["balance"] == 47)
        await system.wait_account(unknown, lambda v: v["balances"].get("sim", {}).get("spent") == 3)
        acct_fake.balances = {"tok-known": {"sim": 40, "bonus": 3}, "tok-unknown": {"sim": 30}}

        resp = await system.api.post(f"/api/v1/accounts/{known}/sync")
        assert resp.status_code == 202 and resp.json()["reported"] == {"sim": 40}
        assert resp.json()["ignored"] == ["bonus"]  # not a credit type the manifest declares
        # balance and available are two writes of billing's (issue 10 makes them one): wait for both
        view = await system.wait_account(
            known, lambda v: v["balances"]["sim"]["balance"] == 40 and v["balances"]["sim"]["available"] == 40
        )
        newest = (await system.api.get(f"/api/v1/accounts/{known}/ledger?limit=1")).json()["items"][0]
        assert (newest["kind"], newest["amount"], newest["balance_change"]) == ("adjustment", -7, -7)
        assert newest["reason"] == "provider reports 40"

        # A balance we never knew: the sync makes it known, with the whole difference on the record.
        await system.api.post(f"/api/v1/accounts/{unknown}/sync")
        view = await system.wait_account(unknown, lambda v: v["balances"]["sim"]["tracked"])
        assert view["balances"]["sim"]["balance"] == 30
        entries = (await system.api.get(f"/api/v1/accounts/{unknown}/ledger")).json()["items"]
        assert sum(e["balance_change"] for e in entries) == 30 and entries[0]["amount"] == 33


async def test_sync_is_refused_for_a_provider_that_cannot_report_balances(fresh_servers, acct_fake):
    async with running(fresh_servers, acct_fake) as system:
        resp = await system.api.post(
            "/api/v1/accounts", json={"provider_id": "sim", "raw_data": {"token": "t-sim"}}
        )
        resp = await system.api.post(f"/api/v1/accounts/{resp.json()['id']}/sync")
        assert resp.status_code == 409 and resp.json()["error"]["code"] == "sync_unsupported"


async def test_the_ledger_pages_newest_first_and_a_cancel_gives_the_hold_back(fresh_servers, acct_fake):
    async with running(fresh_servers, acct_fake) as system:
        account = (await system.account("tok-l", concurrency_limit=5, credits={"sim": 20, "premium": 4}))[
            "id"
        ]
        gids = [await system.generate(prompt=f"page {i}", account_id=account) for i in range(3)]
        for gid in gids:
            await wait_for(system.api, gid)
        slow = await system.generate(prompt="cancel me", duration=4, latency=30, account_id=account)
        await wait_for(system.api, slow, {"submitted", "processing"})
        # held while it runs (billing books the hold on its own time, so wait for it)
        await system.wait_account(account, lambda v: v["balances"]["sim"]["available"] == 20 - 3 - 4)
        assert (await system.api.post(f"/api/v1/generations/{slow}/cancel")).status_code == 202
        view = await system.wait_account(
            account, lambda v: v["balances"]["sim"]["reserved"] == 0 and v["slots_in_use"] == 0
        )
        assert view["balances"]["sim"]["available"] == view["balances"]["sim"]["balance"] == 17

        pages, cursor = [], None
        while True:
            page = (
                await system.api.get(
                    f"/api/v1/accounts/{account}/ledger",
                    params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                )
            ).json()
            pages.append(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        entries = [e for p in pages for e in p]
        assert len(entries) == 2 + 3 * 2 + 2 and all(len(p) <= 2 for p in pages)  # grants, 3 jobs, the cancel
        assert len({e["id"] for e in entries}) == len(entries)
        assert [e["booked_at"] for e in entries] == sorted((e["booked_at"] for e in entries), reverse=True)
        assert sum(e["balance_change"] for e in entries if e["credit_type"] == "sim") == 17
        bad = await system.api.get(f"/api/v1/accounts/{account}/ledger", params={"cursor": "nonsense"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
