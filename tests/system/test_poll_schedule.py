"""Polling that scales with jobs, not jobs x time, and polls when it is worth it (issue 11).

Real nats-server and MongoDB wire server; the provider's HTTP API is the sim fake (a copy under another
id for a second provider). The tests publish `generation.submitted` themselves for jobs they created on
the fake, and run only pollers: what is checked is when and how often each job was polled.

- more jobs in flight than the consumer's `max_ack_pending` are all polled, and none holds a message;
- a job whose duration is known is polled once, at its end; a provider's durations are learned;
- a poller SIGKILLed with jobs scheduled: another replica polls them on time; a dead replica's lease
  is taken over when it runs out;
- replicas share the work and never poll one job at the same moment;
- short jobs are polled on their own schedule behind a backlog of long ones, of the same provider
  and of another one;
- end polls come before progress polls when a replica is short of capacity, and progress polls stay
  within their budget without holding end polls back.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import httpx
import nats
import pytest
from conftest import PROVIDERS, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_contracts import GenerationSubmitted, OperationType, new_id, subjects
from pixsim_provider_sdk import LoadedProvider, Registry, discover
from pixsim_provider_sdk.testing.fake_http import load_fake
from pixsim_runtime import outbox
from pixsim_runtime.inprocess import serve
from support import mongo_db
from system.kit import start_service

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

_sim = discover(PROVIDERS, include_entry_points=False, only=["sim"])
SimProvider, SIM = type(_sim.get("sim")), _sim.manifest("sim")
SYSTEM_TOKEN = "sim-system-token"


@dataclass
class CallLog:
    """Every `check_status`, as (provider job id, replica, started at (monotonic)); and whether two ran
    for one job at the same moment."""

    calls: list[tuple[str, str, float]] = field(default_factory=list)
    running: Counter[str] = field(default_factory=Counter)
    overlaps: int = 0

    def first_poll(self, job_id: str) -> float:
        return min(t for j, _, t in self.calls if j == job_id)

    def last_poll(self, job_id: str) -> float:
        return max(t for j, _, t in self.calls if j == job_id)

    def count(self, job_id: str) -> int:
        return sum(1 for j, _, _ in self.calls if j == job_id)


def recording(cls: type, log: CallLog, replica: str = "", slow_s: float = 0.0) -> type:
    class Recorded(cls):  # type: ignore[misc, valid-type]
        async def check_status(self, account, provider_job_id, operation_type=None):
            log.running[provider_job_id] += 1
            log.overlaps += log.running[provider_job_id] > 1
            log.calls.append((provider_job_id, replica, time.monotonic()))
            try:
                if slow_s:
                    await asyncio.sleep(slow_s)
                return await super().check_status(account, provider_job_id, operation_type)
            finally:
                log.running[provider_job_id] -= 1

    return Recorded


def provider(cls: type, manifest: Any, fake_url: str) -> LoadedProvider:
    instance = cls({"base_url": fake_url})
    instance.attach_manifest(manifest)
    return LoadedProvider(manifest, instance, "tests/system/test_poll_schedule.py")


def sim_fake(latency: float) -> Any:
    fake = load_fake(PROVIDERS / "sim")(latency=latency)
    fake.start("127.0.0.1", 0)
    return fake


def gets(fake: Any, job_id: str) -> int:
    """Polls of the job the fake received (its own call log)."""
    return sum(1 for r in fake.requests if r.method == "GET" and r.path == f"/v1/jobs/{job_id}")


@asynccontextmanager
async def pollers(servers: Any, db: str, registries: list[Registry], **extra: Any) -> AsyncIterator[dict]:
    from pixsim_poller.app import PollerSettings, create_app

    settings = service_settings(servers, db=db, **extra)
    apps = [
        create_app(PollerSettings(**settings), tracer_provider=TracerProvider(), registry=r)
        for r in registries
    ]
    async with serve(*apps):
        yield settings


class Submitter:
    """Creates jobs on a fake as the provider's system account, then publishes their `submitted` event."""

    def __init__(self, servers: Any) -> None:
        self.servers = servers
        self.submitted_at: dict[str, float] = {}  # gid -> monotonic time of the publish

    async def __aenter__(self) -> Self:
        self.nc = await nats.connect(self.servers.nats_url)
        self.http = httpx.AsyncClient(timeout=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.nc.close()

    async def submit(
        self, fake: Any, provider_id: str = "sim", *, latency: float | None = None, duration: int = 2
    ) -> tuple[str, str]:
        params: dict[str, Any] = {"prompt": "a fox", "duration": duration, "quality": "720p"}
        if latency is not None:
            params["latency"] = latency
        resp = await self.http.post(
            f"{fake.url}/v1/jobs",
            json={"operation": "text_to_video", **params},
            headers={"Authorization": f"Bearer {SYSTEM_TOKEN}"},
        )
        assert resp.status_code == 201, resp.text
        job_id = resp.json()["id"]
        event = GenerationSubmitted(
            generation_id=new_id(),
            provider_id=provider_id,
            operation_type=OperationType.TEXT_TO_VIDEO,
            account_id=f"system-{provider_id}",
            provider_job_id=job_id,
            params=params,
            deadline_at=datetime.now(UTC) + timedelta(minutes=10),
        )
        await self.nc.jetstream().publish(
            event.subject, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.event_id}
        )
        self.submitted_at[event.generation_id] = time.monotonic()
        return event.generation_id, job_id


async def scheduled(servers: Any, db: str, gids: list[str], timeout: float = 30) -> list[dict]:
    polls = mongo_db(servers.mongo_url, db)["polls"]
    deadline = time.monotonic() + timeout
    while True:
        docs = await polls.find({"_id": {"$in": gids}, "job": {"$exists": True}}).to_list()
        if len(docs) == len(gids):
            return docs
        assert time.monotonic() < deadline, f"{len(docs)} of {len(gids)} jobs scheduled"
        await asyncio.sleep(0.05)


async def ended(servers: Any, db: str, gids: list[str], timeout: float = 60) -> dict[str, dict]:
    """Each job's poll record once it ended and its events are out; all of them completed."""
    polls = mongo_db(servers.mongo_url, db)["polls"]
    deadline = time.monotonic() + timeout
    while True:
        docs = await polls.find({"_id": {"$in": gids}}).to_list()
        done = {d["_id"]: d for d in docs if d.get("ended_at") and "next_poll_at" not in d}
        if len(done) == len(gids):
            break
        assert time.monotonic() < deadline, f"{len(done)} of {len(gids)} jobs ended"
        await asyncio.sleep(0.1)
    for gid, doc in done.items():
        assert outbox.decode(doc["outbox"])[-1].type == "generation.completed", (gid, doc["outbox"][-1])
    return done


async def test_more_jobs_in_flight_than_max_ack_pending_are_all_polled(fresh_servers):
    fake, log = sim_fake(latency=1.0), CallLog()
    registry = Registry([provider(recording(SimProvider, log), SIM, fake.url)])
    try:
        async with (
            pollers(
                fresh_servers,
                "acks",
                [registry],
                PIXSIM_POLL_MAX_ACK_PENDING=20,
                PIXSIM_POLL_BATCH=10,
                PIXSIM_POLL_PROGRESS_INTERVAL=30,
                PIXSIM_POLL_MAX_INTERVAL=30,
            ),
            Submitter(fresh_servers) as jobs,
        ):
            submitted = [await jobs.submit(fake, latency=6) for _ in range(60)]
            gids = [gid for gid, _ in submitted]
            await scheduled(fresh_servers, "acks", gids)
            js = jobs.nc.jetstream()
            info = await js.consumer_info(subjects.GENERATIONS_STREAM, "poller")
            assert info.config.max_ack_pending == 20
            assert not log.calls, "polled before the expected end"
            # all 60 are in flight, and not one of them holds a message of the consumer
            for _ in range(100):
                info = await js.consumer_info(subjects.GENERATIONS_STREAM, "poller")
                if info.num_ack_pending == 0 and info.num_pending == 0:
                    break
                await asyncio.sleep(0.05)
            assert (info.num_ack_pending, info.num_pending) == (0, 0), info
            await ended(fresh_servers, "acks", gids)
        assert all(1 <= gets(fake, job_id) <= 2 for _, job_id in submitted), [
            gets(fake, j) for _, j in submitted
        ]
    finally:
        fake.stop()


async def test_a_job_of_known_duration_is_polled_once_at_its_end_and_durations_are_learned(fresh_servers):
    fake = sim_fake(latency=2.0)  # the remote's own default, for jobs that do not say
    registry = Registry([provider(SimProvider, SIM, fake.url)])
    production_like = {
        "PIXSIM_POLL_MIN_INTERVAL": 0.5,
        "PIXSIM_POLL_INTERVAL": 1.0,
        "PIXSIM_POLL_PROGRESS_INTERVAL": 15,
        "PIXSIM_POLL_MAX_INTERVAL": 30,
    }
    try:
        async with (
            pollers(fresh_servers, "known", [registry], **production_like),
            Submitter(fresh_servers) as jobs,
        ):
            known = [await jobs.submit(fake, latency=latency) for latency in (1.5, 3, 4.5)]
            unknown = [await jobs.submit(fake) for _ in range(3)]
            docs = {
                d["_id"]: d for d in await scheduled(fresh_servers, "known", [g for g, _ in known + unknown])
            }
            assert {docs[g]["estimate"] for g, _ in known} == {"hook"}
            assert {docs[g]["estimate"] for g, _ in unknown} == {None}
            await ended(fresh_servers, "known", [g for g, _ in known + unknown])
            assert [gets(fake, job_id) for _, job_id in known] == [1, 1, 1]  # the fake's own call log
            # nothing known: polled every second (at 1 s, running; at 2 s, done)
            assert all(gets(fake, job_id) <= 3 for _, job_id in unknown)

            learned = await jobs.submit(fake)  # the same operation and params: their durations are known now
            (doc,) = await scheduled(fresh_servers, "known", [learned[0]])
            assert doc["estimate"] == "learned" and 1.0 <= doc["expected_s"] <= 3.5, (
                doc
            )  # the remote takes 2 s
            await ended(fresh_servers, "known", [learned[0]])
            assert gets(fake, learned[1]) <= 2
    finally:
        fake.stop()


async def test_jobs_of_a_killed_poller_are_polled_on_time_by_another(fresh_servers):
    fake, log = sim_fake(latency=1.0), CallLog()
    extra = {"PIXSIM_POLL_ACK_WAIT": 2, "PIXSIM_POLL_PROGRESS_INTERVAL": 30, "PIXSIM_POLL_MAX_INTERVAL": 30}
    settings = service_settings(fresh_servers, db="killed", **extra)
    env = {**os.environ, **{k: str(v) for k, v in settings.items()}, "PIXSIM_SIM_BASE_URL": fake.url}
    doomed = await start_service("pixsim_poller", env)
    try:
        registry = Registry([provider(recording(SimProvider, log, "survivor"), SIM, fake.url)])
        async with pollers(fresh_servers, "killed", [registry], **extra), Submitter(fresh_servers) as jobs:
            submitted = [await jobs.submit(fake, latency=4) for _ in range(8)]
            await scheduled(fresh_servers, "killed", [g for g, _ in submitted])
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
            await ended(fresh_servers, "killed", [g for g, _ in submitted])
            for gid, job_id in submitted:  # polled once each, by the survivor, at the job's end
                assert gets(fake, job_id) == 1 and log.count(job_id) == 1, (job_id, gets(fake, job_id))
                late = log.first_poll(job_id) - jobs.submitted_at[gid] - 4
                assert -0.2 < late < 2.0, late  # margin for a loaded machine

            # a replica that died holding a lease: its job is polled when the lease runs out, not before
            gid, job_id = await jobs.submit(fake, latency=3)
            await scheduled(fresh_servers, "killed", [gid])
            polls = mongo_db(fresh_servers.mongo_url, "killed")["polls"]
            lease_end = time.time() + 5
            taken = await polls.update_one(
                {"_id": gid, "holder": ""},
                {
                    "$set": {
                        "holder": "dead-replica",
                        "lease_id": "theirs",
                        "lease_until": lease_end,
                        "next_poll_at": lease_end,
                    }
                },
            )
            assert taken.matched_count == 1
            done = await ended(fresh_servers, "killed", [gid])
            assert done[gid]["ended_at"] >= lease_end and gets(fake, job_id) == 1
    finally:
        if doomed.poll() is None:
            doomed.kill()
        fake.stop()


async def test_replicas_share_the_work_and_never_poll_one_job_at_the_same_moment(fresh_servers):
    fake, log = sim_fake(latency=3.0), CallLog()
    registries = [
        Registry([provider(recording(SimProvider, log, f"replica-{i}", slow_s=0.2), SIM, fake.url)])
        for i in range(3)
    ]
    # no expected duration (polled every 0.3 s), a lease of 1 s: renewed while a poll runs
    async with (
        pollers(fresh_servers, "shared", registries, PIXSIM_POLL_ACK_WAIT=1),
        Submitter(fresh_servers) as jobs,
    ):
        submitted = [await jobs.submit(fake) for _ in range(24)]
        await ended(fresh_servers, "shared", [g for g, _ in submitted])
    assert log.overlaps == 0, "two replicas polled one job at the same moment"
    assert {replica for _, replica, _ in log.calls} == {"replica-0", "replica-1", "replica-2"}
    for _, job_id in submitted:
        assert gets(fake, job_id) == log.count(job_id) >= 2  # the fake saw exactly the polls we made
    fake.stop()


def _second_provider(tmp_path: Path, provider_id: str) -> tuple[type, Any]:
    """A copy of the sim provider folder under another id: a second provider, no code changed."""
    folder = tmp_path / "providers" / provider_id
    shutil.copytree(PROVIDERS / "sim", folder, ignore=shutil.ignore_patterns("__pycache__", "test_*"))
    manifest = folder / "manifest.py"
    manifest.write_text(
        manifest.read_text()
        .replace('id="sim"', f'id="{provider_id}"')
        .replace('domains=["sim.pixsim.local"]', f'domains=["{provider_id}.example"]')
    )
    loaded = discover(tmp_path / "providers", include_entry_points=False, only=[provider_id])
    return type(loaded.get(provider_id)), loaded.manifest(provider_id)


async def test_short_jobs_are_polled_on_their_own_schedule_behind_a_flood_of_another_provider(
    fresh_servers, tmp_path
):
    lumen_cls, lumen = _second_provider(tmp_path, "lumen")
    sim_api, lumen_api, log = sim_fake(latency=60.0), sim_fake(latency=60.0), CallLog()
    # sim answers slowly and has far more due polls than this replica can make: a standing backlog
    registry = Registry(
        [
            provider(recording(SimProvider, log, "sim", slow_s=0.25), SIM, sim_api.url),
            provider(recording(lumen_cls, log, "lumen"), lumen, lumen_api.url),
        ]
    )
    extra = {
        "PIXSIM_POLL_BATCH": 4,
        "PIXSIM_POLL_MIN_INTERVAL": 0.2,
        "PIXSIM_POLL_INTERVAL": 0.5,
        "PIXSIM_POLL_PROGRESS_INTERVAL": 5,
        "PIXSIM_POLL_MAX_INTERVAL": 5,
    }
    try:
        async with pollers(fresh_servers, "flood", [registry], **extra), Submitter(fresh_servers) as jobs:
            for _ in range(40):  # no expected duration: each is due every 0.5 s, 80 polls/s wanted, 16 made
                await jobs.submit(sim_api)
            await asyncio.sleep(2)
            short = []
            for _ in range(4):
                short.append(await jobs.submit(lumen_api, "lumen", latency=1))
                await asyncio.sleep(0.3)
            await ended(fresh_servers, "flood", [g for g, _ in short])
            for gid, job_id in short:
                late = log.first_poll(job_id) - jobs.submitted_at[gid] - 1
                assert -0.2 < late < 2.0, late  # margin for a loaded machine
                assert gets(lumen_api, job_id) == 1
            flood_polls = [t for _, replica, t in log.calls if replica == "sim"]
            assert max(flood_polls) > max(log.first_poll(j) for _, j in short), "the backlog had drained"
    finally:
        sim_api.stop()
        lumen_api.stop()


async def test_short_jobs_are_polled_on_their_own_schedule_behind_long_ones_of_the_same_provider(
    fresh_servers,
):
    fake, log = sim_fake(latency=60.0), CallLog()
    registry = Registry([provider(recording(SimProvider, log, slow_s=0.05), SIM, fake.url)])
    extra = {
        "PIXSIM_POLL_BATCH": 4,
        "PIXSIM_POLL_MIN_INTERVAL": 0.2,
        "PIXSIM_POLL_INTERVAL": 0.5,
        "PIXSIM_POLL_PROGRESS_INTERVAL": 2,
        "PIXSIM_POLL_MAX_INTERVAL": 5,
        "PIXSIM_POLL_PROGRESS_RATE": 0,
    }
    try:
        async with pollers(fresh_servers, "same", [registry], **extra), Submitter(fresh_servers) as jobs:
            long = [await jobs.submit(fake, latency=60) for _ in range(40)]  # polled for progress every 2 s
            await asyncio.sleep(1)
            short = []
            for latency in (1.0, 1.5, 2.0, 2.5):
                short.append((await jobs.submit(fake, latency=latency), latency))
            await ended(fresh_servers, "same", [g for (g, _), _ in short])
            for (gid, job_id), latency in short:  # found done just after its end
                late = log.last_poll(job_id) - jobs.submitted_at[gid] - latency
                assert -0.2 < late < 2.0, late  # margin for a loaded machine
                assert gets(fake, job_id) <= 2
            assert all(log.count(job_id) >= 1 for _, job_id in long), "long jobs starved of progress polls"
    finally:
        fake.stop()


async def test_end_polls_come_before_progress_polls_when_a_replica_is_short_of_capacity(fresh_servers):
    fake, log = sim_fake(latency=60.0), CallLog()
    # Each status call takes 0.4 s and 4 run at once: at most 10 polls/s. 100 long jobs want a progress
    # poll every second: 100/s. Ordered by due time alone, each job waits its turn in a cycle of about 10 s,
    # and so would the short jobs' end polls, behind every progress poll due before them.
    registry = Registry([provider(recording(SimProvider, log, slow_s=0.4), SIM, fake.url)])
    extra = {
        "PIXSIM_POLL_BATCH": 4,
        "PIXSIM_POLL_MIN_INTERVAL": 0.2,
        "PIXSIM_POLL_INTERVAL": 0.5,
        "PIXSIM_POLL_PROGRESS_INTERVAL": 1,
        "PIXSIM_POLL_MAX_INTERVAL": 5,
        "PIXSIM_POLL_PROGRESS_RATE": 0,
    }
    try:
        async with pollers(fresh_servers, "ends", [registry], **extra), Submitter(fresh_servers) as jobs:
            long = [await jobs.submit(fake, latency=60) for _ in range(100)]
            await asyncio.sleep(5)  # the backlog builds up
            short = [(await jobs.submit(fake, latency=latency), latency) for latency in (1.0, 2.0, 3.0, 4.0)]
            await ended(fresh_servers, "ends", [g for (g, _), _ in short])
            for (gid, job_id), latency in short:  # found done just after its end, in one or two polls
                late = log.last_poll(job_id) - jobs.submitted_at[gid] - latency
                assert -0.2 < late < 2.5, late  # margin for a loaded machine; behind the backlog it is 10 s+
                assert gets(fake, job_id) <= 2
            assert sum(1 for _, job_id in long if log.count(job_id)) >= 50, "progress polls starved"
    finally:
        fake.stop()


async def test_progress_polls_stay_within_their_budget_and_end_polls_are_not_held_by_it(fresh_servers):
    fake, log = sim_fake(latency=60.0), CallLog()
    registry = Registry([provider(recording(SimProvider, log), SIM, fake.url)])
    # 40 long jobs due for progress every second would be 40 calls/s; the budget allows 2/s.
    extra = {
        "PIXSIM_POLL_BATCH": 8,
        "PIXSIM_POLL_MIN_INTERVAL": 0.2,
        "PIXSIM_POLL_INTERVAL": 0.5,
        "PIXSIM_POLL_PROGRESS_INTERVAL": 1,
        "PIXSIM_POLL_MAX_INTERVAL": 5,
        "PIXSIM_POLL_PROGRESS_RATE": 2,
    }
    try:
        async with pollers(fresh_servers, "budget", [registry], **extra), Submitter(fresh_servers) as jobs:
            long = {job_id for _, job_id in [await jobs.submit(fake, latency=60) for _ in range(40)]}
            await asyncio.sleep(2)
            start = time.monotonic()
            short = [(await jobs.submit(fake, latency=latency), latency) for latency in (1.0, 2.0, 3.0)]
            await ended(fresh_servers, "budget", [g for (g, _), _ in short])
            await asyncio.sleep(max(0.0, start + 6 - time.monotonic()))
            window = time.monotonic() - start
            progress_calls = [t for job_id, _, t in log.calls if job_id in long and t >= start]
            assert len(progress_calls) <= 2 * window + 3, (
                len(progress_calls),
                window,
            )  # the budget, + a burst
            assert len(progress_calls) >= window, "progress polls stopped altogether"
            for (gid, job_id), latency in short:
                late = log.last_poll(job_id) - jobs.submitted_at[gid] - latency
                assert -0.2 < late < 2.0, late
                assert gets(fake, job_id) <= 2
    finally:
        fake.stop()
