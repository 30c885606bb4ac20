"""A poll never outlives its lease, against the real MongoDB wire server: when no renewal is confirmed in
time (MongoDB slow for this replica, or a poll that waited too long for a slot), the poll is stopped
before the lease runs out, so the replica that takes the job next never polls it at the same moment."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pixsim_poller.loop import Scheduler
from pixsim_poller.store import PollStore
from support import mongo_db

LEASE_S = 1.0


class SlowRenewals(PollStore):
    """A replica whose renewals reach MongoDB late (a congested link, a stalled server)."""

    async def renew(self, record: dict[str, Any], until: float) -> bool:
        await asyncio.sleep(2 * LEASE_S)
        return await super().renew(record, until)


@dataclass
class Calls:
    """Provider calls as (job, replica, started, ended, cancelled); how many ran for one job at once."""

    done: list[tuple[str, str, float, float, bool]] = field(default_factory=list)
    running: dict[str, int] = field(default_factory=dict)
    overlaps: int = 0
    started_after_lease: int = 0

    def poll_fn(self, replica: str, store: PollStore, call_s: float):
        async def poll(record: dict[str, Any]) -> float | None:
            job, started = record["_id"], time.time()
            self.started_after_lease += started >= record["lease_until"]
            self.running[job] = self.running.get(job, 0) + 1
            self.overlaps += self.running[job] > 1
            cancelled = True
            try:
                await asyncio.sleep(call_s)  # the provider's status call
                cancelled = False
            finally:
                self.running[job] -= 1
                self.done.append((job, replica, started, time.time(), cancelled))
            await store.reschedule(record, time.time() + 3600, {})  # the job is not due again in the test
            return None

        return poll


def scheduler(store: PollStore, poll: Any, concurrency: int = 4) -> Scheduler:
    return Scheduler(
        store,
        ["sim"],
        poll,
        concurrency=concurrency,
        lease_s=LEASE_S,
        keep_alive_s=LEASE_S / 3,
        retry_s=0.2,
        retry_max_s=1.0,
    )


async def _seed(store: PollStore, ids: list[str]) -> None:
    free = {"lease_until": 0.0, "holder": "", "lease_id": ""}
    now = time.time()
    await store.polls.insert_many(
        [{"_id": gid, "provider_id": "sim", "next_poll_at": now, "ends_from": now, **free} for gid in ids]
    )


async def _until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_poll_whose_renewal_is_late_is_stopped_before_another_replica_takes_the_job(servers):
    db = mongo_db(servers.mongo_url, f"leases-{uuid.uuid4().hex[:8]}")
    slow, quick = SlowRenewals(db), PollStore(db)
    await _seed(quick, ["job"])
    calls = Calls()
    a = scheduler(slow, calls.poll_fn("a", slow, call_s=3 * LEASE_S))
    b = scheduler(quick, calls.poll_fn("b", quick, call_s=0.1))
    a.start()
    await _until(lambda: calls.running.get("job"))
    b.start()
    try:
        await _until(lambda: any(replica == "b" for _, replica, *_ in calls.done))
    finally:
        await a.stop(0.1)
        await b.stop(0.1)

    assert calls.overlaps == 0, calls.done
    polls = sorted(calls.done, key=lambda c: c[2])
    for (_, _, _, ended, _), (_, _, started, _, _) in itertools.pairwise(polls):
        assert ended <= started  # one after another (a may take the job again before b does)
    for _, replica, started, ended, cancelled in polls:
        if replica == "a":  # stopped before its lease (taken when the poll started) ran out
            assert cancelled and ended - started < LEASE_S
    assert [(r, cancelled) for _, r, *_, cancelled in polls if r == "b"] == [("b", False)]
    doc = await quick.polls.find_one({"_id": "job"})
    assert doc["next_poll_at"] > time.time() + 3000  # b's write-back stands: a's late renewal took nothing


async def test_a_claimed_job_whose_lease_ran_out_while_it_waited_for_a_slot_is_left_to_the_next_claim(
    servers,
):
    db = mongo_db(servers.mongo_url, f"leases-{uuid.uuid4().hex[:8]}")
    store = PollStore(db)
    await _seed(store, ["first", "second"])
    calls = Calls()
    # one slot: both jobs are claimed together, and the second waits while the first's poll (renewed)
    # takes longer than a lease
    one = scheduler(store, calls.poll_fn("one", store, call_s=1.5 * LEASE_S), concurrency=1)
    one.start()
    try:
        await _until(lambda: {job for job, *_ in calls.done} == {"first", "second"})
    finally:
        await one.stop(0.1)

    assert calls.started_after_lease == 0
    assert [cancelled for *_, cancelled in calls.done] == [False, False]  # both polled, in full
    assert sum(1 for job, *_ in calls.done if job == "second") == 1
