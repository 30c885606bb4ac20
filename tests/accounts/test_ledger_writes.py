"""Billing's ledger on its own (no NATS, no services): what one booking costs in MongoDB round trips, many
replicas delivering the same events at once while they crash after every kind of write, and the invariants
check catching a ledger that was tampered with."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest
from pixsim_billing import ledger, notices
from pixsim_billing.app import AccountOwners
from pixsim_billing.invariants import check_account
from pixsim_contracts import (
    CreditEvent,
    CreditsCharged,
    CreditsGranted,
    CreditsReleased,
    CreditsReserved,
    CreditsSynced,
)
from pymongo import AsyncMongoClient
from support import Commands

USER, SYSTEM = "acc_ledger", "system-sim"


def _base(account: str) -> dict[str, str]:
    return {"provider_id": "sim", "account_id": account, "credit_type": "sim"}


def _job(account: str, gid: str, amount: int, *, charge: int | None) -> list[CreditEvent]:
    """A hold and its settlement: charged `charge`, or released when `charge` is None."""
    base = _base(account)
    settle: CreditEvent = (
        CreditsReleased(event_id=f"{gid}.released", generation_id=gid, amount=amount, reason="failed", **base)
        if charge is None
        else CreditsCharged(
            event_id=f"{gid}.charged", generation_id=gid, amount=charge, reserved=amount, **base
        )
    )
    return [
        CreditsReserved(event_id=f"{gid}.reserved", generation_id=gid, amount=amount, **base),
        settle,
    ]


async def _open_account(db: Any, account: str) -> None:
    """What the gateway stores: `available` comes from billing's opening grant."""
    await db["accounts"].insert_one({"_id": account, "provider_id": "sim", "available": {}})


async def _hold(db: Any, event: CreditEvent) -> None:
    """What the dispatcher does before a reservation is published: the hold comes off `available`."""
    if isinstance(event, CreditsReserved) and not event.account_id.startswith("system-"):
        await db["accounts"].update_one({"_id": event.account_id}, {"$inc": {"available.sim": -event.amount}})


def _expected(events: list[CreditEvent]) -> dict[str, int]:
    total = Counter[str]()
    for event in events:
        total.update(ledger.deltas(event))
    return dict(total)


async def test_a_fresh_event_costs_three_round_trips_and_four_for_a_user_account(servers):
    commands = Commands()
    client: AsyncMongoClient = AsyncMongoClient(servers.mongo_url, tz_aware=True, event_listeners=[commands])
    try:
        db = client["ledger_round_trips"]
        await ledger.create_indexes(db)
        await _open_account(db, USER)
        # Warm caches: a process's first event of a balance reads the balance (and the account) once.
        for account in (SYSTEM, USER):
            await ledger.apply(db, CreditsGranted(event_id=f"{account}.grant", amount=100, **_base(account)))
        costs: dict[str, list[list[str]]] = {SYSTEM: [], USER: []}
        for account in (SYSTEM, USER):
            for i, event in enumerate(
                _job(account, f"{account}-g1", 5, charge=3) + _job(account, f"{account}-g2", 4, charge=None)
            ):
                await _hold(db, event)
                commands.sent.clear()
                assert await ledger.apply(db, event) is not None
                costs[account].append(list(commands.sent))
        booking = ["find ledger", "update balances", "insert ledger"]
        assert costs[SYSTEM] == [booking] * 4, costs[SYSTEM]
        assert costs[USER] == [[*booking, "update accounts"]] * 4, costs[USER]
        # A duplicate costs one read (and nothing more once the account is up to date).
        commands.sent.clear()
        assert await ledger.apply(db, _job(USER, f"{USER}-g1", 5, charge=3)[1]) is None
        assert commands.sent == ["find ledger"]
        for account in (SYSTEM, USER):
            assert await check_account(db, account) == []
    finally:
        await client.close()


async def test_events_of_one_balance_arriving_together_are_booked_as_one_group(servers):
    """A group commit: the events of a balance delivered at once cost one lookup, one fold and one insert
    together (and one account update), each delivery gets its own entry, and a second copy of an event
    in the same group gets None."""
    commands = Commands()
    client: AsyncMongoClient = AsyncMongoClient(servers.mongo_url, tz_aware=True, event_listeners=[commands])
    try:
        db = client["ledger_groups"]
        await ledger.create_indexes(db)
        await _open_account(db, USER)
        for account in (SYSTEM, USER):
            await ledger.apply(db, CreditsGranted(event_id=f"{account}.grant", amount=500, **_base(account)))
        for account in (SYSTEM, USER):
            events = [e for i in range(20) for e in _job(account, f"{account}-g{i}", 5, charge=i % 5 or None)]
            for event in events:
                await _hold(db, event)
            commands.sent.clear()
            results = await asyncio.gather(*(ledger.apply(db, e) for e in [*events, events[3]]))
            booking = ["find ledger", "update balances", "insert ledger"]
            assert commands.sent == booking + ([] if account == SYSTEM else ["update accounts"]), (
                commands.sent
            )
            assert [r["_id"] for r in results[:-1]] == [e.event_id for e in events] and results[-1] is None
            assert sorted(r["seq"] for r in results[:-1]) == list(range(2, 42))
            assert await check_account(db, account) == []
            balance = await db["balances"].find_one({"_id": ledger.balance_id(account, "sim")})
            expected = _expected([CreditsGranted(amount=500, **_base(account)), *events])
            assert (balance["balance"], balance["reserved"], balance["spent"]) == (
                expected["balance"],
                expected["reserved"],
                expected["spent"],
            )
        # Delivered again, all at once: one lookup finds every entry, nothing is written.
        commands.sent.clear()
        assert await asyncio.gather(*(ledger.apply(db, e) for e in events)) == [None] * len(events)
        assert commands.sent == ["find ledger"]
    finally:
        await client.close()


async def test_an_event_that_cannot_be_booked_fails_alone_not_its_group(servers):
    client: AsyncMongoClient = AsyncMongoClient(servers.mongo_url, tz_aware=True)
    try:
        db = client["ledger_group_failure"]
        await ledger.create_indexes(db)
        events = [e for i in range(5) for e in _job(SYSTEM, f"bad-g{i}", 2, charge=2)]
        # An entry an older billing left half-booked: refused loudly, never guessed at.
        await db["ledger"].insert_one({"_id": events[4].event_id, "balance_id": "x", "applied": False})
        results = await asyncio.gather(*(ledger.apply(db, e) for e in events), return_exceptions=True)
        assert isinstance(results[4], RuntimeError) and "half-booked" in str(results[4])
        assert all(isinstance(r, dict) for i, r in enumerate(results) if i != 4), results
        balance = await db["balances"].find_one({"_id": ledger.balance_id(SYSTEM, "sim")})
        # g2's reservation is the one not booked: its charge still takes the 2 it held off `reserved`
        assert (balance["entries"], balance["spent"], balance["reserved"]) == (9, 10, -2)
    finally:
        await client.close()


async def test_announcing_a_booked_event_reads_its_balance_once_unless_a_line_is_crossed(servers):
    """After the booking: the account's provider is read once per process, the balance once per event,
    and the balance again only when a crossing was written (its outbox is then the stored one)."""
    commands = Commands()
    client: AsyncMongoClient = AsyncMongoClient(servers.mongo_url, tz_aware=True, event_listeners=[commands])
    published: list[Any] = []

    class Broker:  # what `outbox.flush` publishes through; NATS itself is not what this test is about
        async def publish(self, message: Any, subject: str, **kwargs: Any) -> None:
            published.append(subject)

    try:
        db = client["ledger_notices"]
        await ledger.create_indexes(db)
        await _open_account(db, USER)
        owners = AccountOwners(db)
        await ledger.apply(db, CreditsGranted(event_id="notices.grant", amount=100, **_base(USER)))
        key = ledger.balance_id(USER, "sim")
        costs = []
        for i, event in enumerate(_job(USER, "n-g1", 5, charge=3) + _job(USER, "n-g2", 95, charge=95)):
            await _hold(db, event)
            await ledger.apply(db, event)
            commands.sent.clear()
            assert await owners.provider_of(USER) == "sim"
            await notices.check(db, Broker(), key, ledger.KINDS[type(event)], threshold=10)
            costs.append(list(commands.sent))
        assert costs[0] == ["find accounts", "find balances"]  # the first: who owns it, then the balance
        assert costs[1] == costs[2] == ["find balances"]  # above the line: nothing to announce
        # 98 of 100 spent, 2 left: below the line (10), not exhausted: one crossing written, then re-read
        assert costs[3][:3] == ["find balances", "update balances", "find balances"], costs[3]
        assert published and all("credits_low" in s for s in published), published
        assert await owners.provider_of("acc_nobody") is None
    finally:
        await client.close()


class Crash(Exception):
    """A replica stopped right after a write (what `PIXSIM_FAULT_POINT` does to a real process)."""


class Replica:
    """One billing process: its own client, hence its own cached versions; a crash restarts it cold."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name, self.clients = url, name, [AsyncMongoClient(url, tz_aware=True)]

    @property
    def db(self) -> Any:
        return self.clients[-1][self.name]

    def restart(self) -> None:
        self.clients.append(AsyncMongoClient(self.url, tz_aware=True))  # the old one stays: ids stay unique

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


class _NoGroups(dict):
    """Every booking a group of its own: deliveries of one process interleave as freely as separate
    processes'."""

    def setdefault(self, key: Any, default: Any) -> Any:
        return default


@pytest.mark.timeout(300)
@pytest.mark.parametrize("grouped", [True, False], ids=["in-groups", "one-by-one"])
async def test_replicas_delivering_at_once_and_crashing_after_any_write_book_each_event_once(
    servers, monkeypatch, grouped
):
    name, rng = f"ledger_replicas_{grouped}", random.Random(11)
    hits: Counter[str] = Counter()
    crashes: Counter[str] = Counter()

    async def fault_point(point: str) -> None:
        hits[point] += 1
        await asyncio.sleep(rng.random() * 0.002)  # let the other deliveries in between the writes
        if rng.random() < 0.2:
            crashes[point] += 1
            raise Crash(point)

    monkeypatch.setattr(ledger, "fault_point", fault_point)
    if not grouped:
        monkeypatch.setattr(ledger, "_GROUPS", _NoGroups())
    replicas = [Replica(servers.mongo_url, name) for _ in range(4)]
    try:
        db = replicas[0].db
        await ledger.create_indexes(db)
        await _open_account(db, USER)
        events: list[CreditEvent] = []
        for account in (USER, SYSTEM):
            events.append(CreditsGranted(event_id=f"{account}.grant", amount=200, **_base(account)))
            for i in range(15):
                events += _job(account, f"{account}-g{i}", 4 + i % 3, charge=(i % 4) or None)
            events += [
                CreditsGranted(
                    event_id=f"{account}.top-up-{i}", amount=1 + i, reason="top-up", **_base(account)
                )
                for i in range(5)
            ]
        for event in events:
            await _hold(db, event)

        async def deliver(replica: Replica, event: CreditEvent, delay: float) -> None:
            await asyncio.sleep(delay)
            while True:  # redelivered until one delivery gets through (JetStream's ack wait, shortened)
                try:
                    await ledger.apply(replica.db, event)
                    return
                except Crash:
                    replica.restart()
                    await asyncio.sleep(rng.random() * 0.05)

        # Each event delivered 1 to 3 times, to random replicas, all at about the same time.
        deliveries = [
            deliver(rng.choice(replicas), event, rng.random() * 0.5)
            for event in events
            for _ in range(rng.randint(1, 3))
        ]
        await asyncio.gather(*deliveries)
        assert set(crashes) == set(ledger.FAULT_POINTS), (hits, crashes)  # every point, crashed after

        # Much later, every event once more, to a replica that never saw it: nothing changes.
        monkeypatch.setattr(ledger, "fault_point", lambda point: asyncio.sleep(0))
        late = Replica(servers.mongo_url, name)
        replicas.append(late)
        assert [await ledger.apply(late.db, event) for event in events] == [None] * len(events)

        for account in (USER, SYSTEM):
            mine = [e for e in events if e.account_id == account]
            expected = _expected(mine)
            assert await check_account(db, account) == []
            balance = await db["balances"].find_one({"_id": ledger.balance_id(account, "sim")})
            assert (balance["balance"], balance["reserved"], balance["spent"], balance["entries"]) == (
                expected["balance"],
                expected["reserved"],
                expected["spent"],
                len(mine),
            )
            assert await db["ledger"].count_documents({"account_id": account, "applied": True}) == len(mine)
        doc = await db["accounts"].find_one({"_id": USER})
        assert doc["available"]["sim"] == _expected([e for e in events if e.account_id == USER])["balance"]

        # A sync delivered by every replica at once: one adjustment, from the balance it follows.
        sync = CreditsSynced(event_id="sync-1", provider_balance=50, **_base(USER))
        monkeypatch.setattr(ledger, "fault_point", fault_point)
        await asyncio.gather(*(deliver(r, sync, rng.random() * 0.01) for r in replicas))
        balance = await db["balances"].find_one({"_id": ledger.balance_id(USER, "sim")})
        assert (balance["balance"], balance["reserved"]) == (50, 0)
        assert await check_account(db, USER) == []
        entry = await db["ledger"].find_one({"_id": "sync-1"})
        assert entry["kind"] == "adjustment" and entry["reason"] == "provider reports 50"
    finally:
        for replica in replicas:
            await replica.close()


async def test_the_check_catches_a_double_booking_a_missing_booking_and_a_moved_figure(servers):
    client: AsyncMongoClient = AsyncMongoClient(servers.mongo_url, tz_aware=True)
    try:
        db = client["ledger_tampered"]
        await _open_account(db, USER)
        events = [CreditsGranted(event_id="grant", amount=30, **_base(USER))]
        events += _job(USER, "g1", 5, charge=5) + _job(USER, "g2", 3, charge=None)
        for event in events:
            await _hold(db, event)
            await ledger.apply(db, event)
        assert await check_account(db, USER) == []
        key, balances, entries, accounts = (
            ledger.balance_id(USER, "sim"),
            db["balances"],
            db["ledger"],
            db["accounts"],
        )

        async def problems_after(change, undo) -> list[str]:
            await change()
            found = await check_account(db, USER)
            await undo()
            assert await check_account(db, USER) == []
            return found

        charge = await entries.find_one({"_id": "g1.charged"})
        balance = await balances.find_one({"_id": key})
        # The charge folded a second time (what a forgotten event id would do): caught twice over.
        again = [{**balance["pending"][-1], "event_id": "g1.charged", "seq": balance["entries"] + 1}]
        fold = {"balance": charge["delta_balance"], "spent": charge["delta_spent"], "entries": 1}
        found = await problems_after(
            lambda: balances.update_one({"_id": key}, {"$inc": fold, "$set": {"pending": again}}),
            lambda: balances.update_one(
                {"_id": key},
                {"$inc": {k: -v for k, v in fold.items()}, "$set": {"pending": balance["pending"]}},
            ),
        )
        assert any("g1.charged folded twice" in p for p in found), found
        assert any("!= sum of the ledger" in p for p in found), found

        # An entry written but never folded (a booking lost): not booked.
        lost = {**charge, "_id": "g3.charged", "generation_id": "g3", "seq": None}
        found = await problems_after(
            lambda: entries.insert_one(lost), lambda: entries.delete_one({"_id": "g3.charged"})
        )
        assert found == [f"{key}: entry g3.charged not booked (number None of {balance['entries']})"]

        # A folded entry gone: missing, and the sums no longer explain the balance.
        found = await problems_after(
            lambda: entries.delete_one({"_id": "g1.charged"}), lambda: entries.insert_one(charge)
        )
        assert f"{key}: entry {charge['seq']} missing" in found and any(
            "sum of the ledger" in p for p in found
        )

        # The last fold's entry never written (a crash nobody finished): caught, although the sums agree.
        last = await entries.find_one({"_id": balance["pending"][-1]["event_id"]})
        found = await problems_after(
            lambda: entries.delete_one({"_id": last["_id"]}), lambda: entries.insert_one(last)
        )
        assert found == [f"{key}: entry {last['seq']} ({last['_id']}) folded but never written"]

        # The account's available moved outside the ledger, or folded once too often.
        found = await problems_after(
            lambda: accounts.update_one({"_id": USER}, {"$inc": {"available.sim": 1}}),
            lambda: accounts.update_one({"_id": USER}, {"$inc": {"available.sim": -1}}),
        )
        assert found == [f"{USER}:sim: available 26 != balance - reserved - unbooked holds = 25"], found
        found = await problems_after(
            lambda: accounts.update_one({"_id": USER}, {"$inc": {"billed.sim": 1}}),
            lambda: accounts.update_one({"_id": USER}, {"$inc": {"billed.sim": -1}}),
        )
        assert found == [f"{key}: the account's available folded 6 of 5 entries"], found
    finally:
        await client.close()
