"""Billing SIGKILLed after each of its writes, each half-booked event redelivered after 1,000 newer ones
(booked by two billings at once; by JetStream after the ack wait, and once more as a duplicate): every
balance equals its ledger.

A window of recent event ids (what billing once used) forgets an event after 100 newer ones, so this
is exactly the case it booked twice.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from typing import Any

import nats
import pytest
from accounts.kit import running, start_billing
from pixsim_billing.invariants import check_account
from pixsim_billing.ledger import FAULT_POINTS, balance_id, deltas
from pixsim_contracts import (
    CreditEvent,
    CreditsCharged,
    CreditsGranted,
    CreditsReleased,
    CreditsReserved,
    subjects,
)
from support import wait_consumer_idle

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

DB = "billing_crashes"
ACK_WAIT_S = 75  # the half-booked events come back only after the 1,000 newer ones were booked
NEWER = 1000


async def _publish(js: Any, events: list[CreditEvent], msg_id: str | None = None) -> None:
    for start in range(0, len(events), 100):
        await asyncio.gather(
            *(
                js.publish(
                    e.subject,
                    e.model_dump_json().encode(),
                    timeout=30,
                    headers={"Nats-Msg-Id": msg_id or e.event_id},
                )
                for e in events[start : start + 100]
            )
        )


async def _until(predicate, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def test_a_crash_between_any_two_writes_and_a_late_redelivery_book_exactly_once(
    fresh_servers, acct_fake
):
    procs: list[subprocess.Popen] = []
    nc = await nats.connect(fresh_servers.nats_url)
    try:
        async with running(fresh_servers, acct_fake, db=DB, dispatchers=0, roles=()) as system:
            db, js = system.db, nc.jetstream()
            env = {
                **{k: str(v) for k, v in system.settings.items()},
                "PIXSIM_BILLING_ACK_WAIT": str(ACK_WAIT_S),
            }
            resp = await system.api.post(
                "/api/v1/accounts",
                json={"provider_id": "sim", "raw_data": {"token": "tok-crash"}, "credits": {"sim": 1000}},
            )
            assert resp.status_code == 201, resp.text
            account = resp.json()["id"]
            base = {"provider_id": "sim", "account_id": account, "credit_type": "sim"}
            published: dict[str, CreditEvent] = {
                f"{account}.granted.sim": CreditsGranted(
                    event_id=f"{account}.granted.sim", amount=1000, **base
                )
            }

            async def hold(amount: int) -> None:  # what the dispatcher does before it publishes a reservation
                await db["accounts"].update_one({"_id": account}, {"$inc": {"available.sim": -amount}})

            # The holds the half-booked charges will settle, booked by a billing that stays up.
            setup = [
                CreditsReserved(event_id=f"g{i}.reserved.sim", generation_id=f"g{i}", amount=10, **base)
                for i in range(len(FAULT_POINTS))
            ]
            for event in setup:
                await hold(event.amount)
            await _publish(js, setup)
            published |= {e.event_id: e for e in setup}
            procs.append(billing := await start_billing(env))
            await _until(lambda: _all_applied(db, list(published)), "the set-up to be booked")
            billing.send_signal(signal.SIGTERM)
            billing.wait(30)

            # One billing per fault point, all waiting at once; each event goes to one of them, which
            # SIGKILLs itself at its point. One event at a time, so each is half-booked by exactly one.
            faulted = [
                await start_billing({**env, "PIXSIM_FAULT_POINT": point}, wait_ready=False)
                for point in FAULT_POINTS
            ]
            procs += faulted
            half_booked: list[CreditEvent] = []
            for i in range(len(FAULT_POINTS)):
                event: CreditEvent = (
                    CreditsCharged(
                        event_id=f"g{i}.charged.sim", generation_id=f"g{i}", amount=i + 1, reserved=10, **base
                    )
                    if i % 2 == 0
                    else CreditsGranted(event_id=f"top-up-{i}", amount=100 + i, reason="top-up", **base)
                )
                half_booked.append(event)
                await _publish(js, [event])
                await _until(
                    lambda i=i: _deaths(faulted, i + 1), f"a billing to die on event {i}", timeout=90
                )
            assert [p.returncode for p in faulted] == [-signal.SIGKILL] * len(FAULT_POINTS)
            # Each folded its event into the balance, but the one killed after writing the entry of the
            # balance's last fold: a fresh billing reads the balance first, so it died before its own fold.
            balance = await db["balances"].find_one({"_id": balance_id(account, "sim")})
            assert balance["entries"] == len(published) + len(FAULT_POINTS) - 1
            published |= {e.event_id: e for e in half_booked}

            # 1,000 newer events on the same balance, booked by a billing that is not killed.
            newer: list[CreditEvent] = []
            for i in range(NEWER // 4):
                gid = f"n{i}"
                await hold(3)
                newer += [
                    CreditsReserved(event_id=f"{gid}.reserved.sim", generation_id=gid, amount=3, **base),
                    CreditsCharged(
                        event_id=f"{gid}.charged.sim", generation_id=gid, amount=2, reserved=3, **base
                    )
                    if i % 2
                    else CreditsReleased(
                        event_id=f"{gid}.released.sim", generation_id=gid, amount=3, reason="failed", **base
                    ),
                    CreditsGranted(event_id=f"more-{i}-a", amount=1, reason="top-up", **base),
                    CreditsGranted(event_id=f"more-{i}-b", amount=2, reason="top-up", **base),
                ]
            procs += [await start_billing(env), await start_billing(env)]  # two replicas, one balance
            await _publish(js, newer)
            published |= {e.event_id: e for e in newer}
            await _until(
                lambda: _all_applied(db, [e.event_id for e in newer]), "the newer events to be booked"
            )
            # The half-booked events come back only now, after 1,000 newer ones: all but one of them were
            # folded 1,000 entries ago (the entry a crash left unwritten was written by the next fold), and
            # one, killed before its fold, is booked only now.
            written = await db["ledger"].count_documents({"_id": {"$in": [e.event_id for e in half_booked]}})
            assert written == len(FAULT_POINTS) - 1
            # Once more, much later, as a duplicate JetStream cannot drop (a fresh Nats-Msg-Id).
            for event in half_booked:
                await _publish(js, [event], msg_id=f"again-{event.event_id}")

            await _until(
                lambda: _all_applied(db, list(published)),
                "the half-booked events to be finished",
                timeout=ACK_WAIT_S * 3,
            )
            # the originals held by the killed billings come back only after their ack wait: wait for that too
            await wait_consumer_idle(
                fresh_servers.nats_url, subjects.CREDITS_STREAM, "billing", timeout=ACK_WAIT_S * 2
            )

            assert await check_account(db, account) == []
            expected = {"balance": 0, "reserved": 0, "spent": 0, "available": 0}
            for event in published.values():
                for field, n in deltas(event).items():
                    expected[field] += n
            balance = await db["balances"].find_one({"_id": balance_id(account, "sim")})
            doc = await db["accounts"].find_one({"_id": account})
            assert (balance["balance"], balance["reserved"], balance["spent"], balance["entries"]) == (
                expected["balance"],
                expected["reserved"],
                expected["spent"],
                len(published),
            )
            assert doc["available"]["sim"] == expected["balance"] - expected["reserved"]
            # The check is no formality: a balance moved outside the ledger is caught.
            await db["balances"].update_one({"_id": balance_id(account, "sim")}, {"$inc": {"balance": 1}})
            assert any("!= sum of the ledger" in p for p in await check_account(db, account))
    finally:
        await nc.close()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


async def _deaths(procs: list[subprocess.Popen], n: int) -> bool:
    dead = sum(p.poll() is not None for p in procs)
    assert dead <= n, "a billing died without an event to book"
    return dead == n


async def _all_applied(db: Any, ids: list[str]) -> bool:
    return await db["ledger"].count_documents({"_id": {"$in": ids}, "applied": True}) == len(ids)
