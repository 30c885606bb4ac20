"""Billing books every credit event exactly once: each one delivered twice, billing SIGKILLed mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import nats
import pytest
from accounts.kit import running, start_billing
from pixsim_billing.invariants import check_account
from pixsim_contracts import subjects
from support import wait_consumer_idle, wait_for

pytestmark = pytest.mark.system

DB = "billing_once"
OUTCOMES = ["success"] * 12 + ["fail"] * 4 + ["filter"] * 4


async def _duplicate_every_credit_event(nats_url: str, seen: list[int]) -> None:
    """Publish each credit event a second time under a fresh Nats-Msg-Id, so JetStream keeps both."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(subjects.CREDIT_SUBJECTS, ordered_consumer=True)
        while True:
            msg = await sub.next_msg(timeout=3600)
            if (msg.headers or {}).get("x-test-duplicate"):
                continue
            await js.publish(
                msg.subject,
                msg.data,
                headers={"Nats-Msg-Id": f"dup-{msg.metadata.sequence.stream}", "x-test-duplicate": "1"},
            )
            seen.append(msg.metadata.sequence.stream)
    finally:
        await nc.close()


async def _wait(predicate, what: str, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.02)):
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_duplicated_credit_events_and_a_killed_billing_book_exactly_once(
    fresh_servers, sim_fake, acct_fake
):
    billing: subprocess.Popen | None = None
    duplicated: list[int] = []
    duplicator: asyncio.Task | None = None
    try:
        # Billing runs as a process of its own (started below, from the same settings), so it can be SIGKILLed.
        async with running(
            fresh_servers, acct_fake, db=DB, roles=("poller",), PIXSIM_BILLING_ACK_WAIT=1
        ) as system:
            api, db = system.api, system.db
            env = {**os.environ, **{k: str(v) for k, v in system.settings.items()}}
            duplicator = asyncio.create_task(
                _duplicate_every_credit_event(fresh_servers.nats_url, duplicated)
            )
            account = (
                await api.post(
                    "/api/v1/accounts",
                    json={
                        "provider_id": "sim",
                        "raw_data": {"token": "tok-ledger"},
                        "credits": {"sim": 1000},
                        "concurrency_limit": 20,
                    },
                )
            ).json()["id"]
            gids = {}
            for i, outcome in enumerate(OUTCOMES):
                resp = await api.post(
                    "/api/v1/generations",
                    json={
                        "provider_id": "sim",
                        "operation_type": "text_to_video",
                        "account_id": account,
                        "params": {
                            "prompt": f"ledger {i}",
                            "duration": 1 + i % 3,
                            "outcome": outcome,
                            "latency": 0.1,
                        },
                    },
                )
                gids[resp.json()["id"]] = 1 + i % 3
            done = {gid: await wait_for(api, gid) for gid in gids}  # billing is not even running yet
            originals = 1 + 2 * len(gids)  # the grant, then a hold and its settlement per job

            async def all_duplicated() -> bool:
                if duplicator.done():
                    duplicator.result()  # raises what stopped it
                return len(duplicated) >= originals

            await _wait(all_duplicated, "the duplicates")

            billing = await start_billing(env)
            ledger = db["ledger"]
            await _wait(lambda: _applied_at_least(ledger, 8), "billing to start booking")
            billing.send_signal(signal.SIGKILL)  # mid-stream: some booked, some half-done, most not yet
            billing.wait(10)
            at_kill = await ledger.count_documents({"applied": True})
            assert 0 < at_kill < originals, at_kill
            billing = await start_billing(env)
            await wait_consumer_idle(fresh_servers.nats_url, subjects.CREDITS_STREAM, "billing", timeout=60)

            spent = sum(gids[g] for g, d in done.items() if d["status"] == "completed")
            entries = await ledger.find({"account_id": account}).to_list()
            assert len(entries) == originals and all(e["applied"] for e in entries)
            kinds = sorted(e["kind"] for e in entries)
            assert kinds == sorted(["grant"] + ["reserved"] * 20 + ["charged"] * 12 + ["released"] * 8)
            for gid, d in done.items():
                mine = {e["kind"]: e["amount"] for e in entries if e["generation_id"] == gid}
                settled = "charged" if d["status"] == "completed" else "released"
                assert mine == {"reserved": gids[gid], settled: gids[gid]}, (gid, d["status"], mine)

            balance = await db["balances"].find_one({"_id": f"{account}:sim"})
            assert (balance["balance"], balance["reserved"], balance["spent"]) == (1000 - spent, 0, spent)
            assert balance["entries"] == originals
            assert (
                sum(e["delta_balance"] for e in entries) == balance["balance"]
            )  # the ledger explains it all
            assert sum(e["delta_reserved"] for e in entries) == balance["reserved"]
            assert sum(e["delta_spent"] for e in entries) == balance["spent"]
            doc = await db["accounts"].find_one({"_id": account})
            assert doc["available"] == {"sim": 1000 - spent} and doc["slots_used"] == 0
            assert await check_account(db, account) == []
            view = (await api.get(f"/api/v1/accounts/{account}")).json()
            assert view["balances"]["sim"] == {
                "balance": 1000 - spent,
                "reserved": 0,
                "available": 1000 - spent,
                "spent": spent,
                "tracked": True,
            }
    finally:
        if duplicator is not None:
            duplicator.cancel()
        if billing is not None and billing.poll() is None:
            billing.send_signal(signal.SIGTERM)
            billing.wait(15)


async def _applied_at_least(ledger, n: int) -> bool:
    return await ledger.count_documents({"applied": True}) >= n
