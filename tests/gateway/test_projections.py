"""The read model: only `requested` creates a generation, and only the first one counts; the projector
stores the events that arrive together in one write (a group commit) and loses nothing to another
replica."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pixsim_contracts import (
    CreditsCharged,
    CreditsReserved,
    GenerationCompleted,
    GenerationProgressed,
    GenerationRequested,
)
from pixsim_gateway.projections import GENERATIONS, Projector, UnknownGeneration, apply_event
from pymongo import AsyncMongoClient
from support import Commands


def _requested(**extra) -> GenerationRequested:
    return GenerationRequested(
        **{
            "generation_id": "g1",
            "provider_id": "sim",
            "operation_type": "text_to_video",
            "params": {"prompt": "x"},
            **extra,
        }
    )


@pytest.mark.parametrize(
    "event",
    [
        GenerationProgressed(generation_id="g1", progress=0.5),
        CreditsReserved(
            generation_id="g1", provider_id="sim", account_id="acc_1", credit_type="sim", amount=1
        ),
    ],
)
def test_no_event_but_requested_creates_a_generation(event) -> None:
    with pytest.raises(UnknownGeneration, match="never seen"):
        apply_event(None, event)


def test_a_second_request_under_the_same_id_changes_nothing() -> None:
    doc = apply_event(None, _requested(user_id="alice"))
    assert doc is not None and doc["user_id"] == "alice"
    assert apply_event(doc, _requested(user_id="mallory", params={"prompt": "other"})) is None
    assert apply_event(doc, GenerationProgressed(generation_id="g1", progress=0.5))["status"] == "processing"


async def test_the_projector_writes_once_per_batch_and_loses_nothing_to_another_replica(servers) -> None:
    commands = Commands()
    client = AsyncMongoClient(servers.mongo_url, tz_aware=True, event_listeners=[commands])
    other = AsyncMongoClient(servers.mongo_url, tz_aware=True)
    name = f"projector_{uuid.uuid4().hex[:8]}"
    here, there = Projector(client[name]), Projector(other[name])  # two gateway replicas
    gid = uuid.uuid4().hex
    common = {"generation_id": gid, "provider_id": "sim", "account_id": "acc_1"}
    requested = _requested(generation_id=gid, event_id=f"{gid}.requested")
    reserved = CreditsReserved(**common, credit_type="sim", amount=2)
    progressed = GenerationProgressed(generation_id=gid, progress=0.5)
    try:
        assert (await here.apply(requested))["version"] == 1  # a new generation: inserted, nothing read
        assert commands.count == {"insert generations": 1}
        # The process's consumers at once (the generations and the credits stream): one write for both.
        both = await asyncio.gather(here.apply(reserved), here.apply(progressed))
        assert commands.count == {"insert generations": 1, "update generations": 1}
        assert both[0] is both[1] and both[0]["version"] == 2 and both[0]["status"] == "processing"
        # Repeats the cache knows of cost nothing (and answer with the document that has them).
        assert (await here.apply(requested))["version"] == 2 and (await here.apply(reserved))["version"] == 2
        assert commands.count == {"insert generations": 1, "update generations": 1}
        # A second `requested` under the same id (another event id) changes nothing: None.
        assert await here.apply(_requested(generation_id=gid, user_id="mallory")) is None
        # Another replica writes: this one's cached version is stale, so it reads once and folds on top.
        charged = CreditsCharged(**common, credit_type="sim", amount=2, reserved=2)
        assert (await there.apply(charged))["version"] == 3
        completed = GenerationCompleted(**common, result={"video_url": "https://cdn.example/v.mp4"})
        doc = await here.apply(completed)
        assert doc["version"] == 4 and doc["status"] == "completed"
        assert doc["credits"] == {"reserved": {"sim": 2}, "charged": {"sim": 2}, "released": {}}
        assert commands.count["find generations"] == 1
        stored = await client[name][GENERATIONS].find_one({"_id": gid})
        assert sorted(stored["applied"]) == sorted(
            e.event_id for e in (requested, reserved, progressed, charged, completed)
        )
    finally:
        await client.close()
        await other.close()


def _events_of(gid: str) -> list:
    common = {"generation_id": gid, "provider_id": "sim", "account_id": "acc_1"}
    return [
        CreditsReserved(**common, credit_type="sim", amount=2),
        GenerationProgressed(generation_id=gid, progress=0.5),
        CreditsCharged(**common, credit_type="sim", amount=2, reserved=2),
        GenerationCompleted(**common, result={"video_url": f"https://cdn.example/{gid}.mp4"}),
    ]


async def test_events_of_many_generations_arriving_together_share_one_write(servers) -> None:
    commands = Commands()
    client = AsyncMongoClient(servers.mongo_url, tz_aware=True, event_listeners=[commands])
    projector = Projector(client[f"projector_{uuid.uuid4().hex[:8]}"])
    gids = [uuid.uuid4().hex for _ in range(30)]
    try:
        await asyncio.gather(*(projector.apply(_requested(generation_id=g)) for g in gids))
        assert commands.count == {"insert generations": 1}  # 30 new generations: one insert command
        events = [e for g in gids for e in _events_of(g)] + [_requested(generation_id=g) for g in gids[:5]]
        await asyncio.gather(*(projector.apply(e) for e in events))
        assert commands.count == {"insert generations": 1, "update generations": 1}
        stored = {d["_id"]: d for d in await projector.collection.find({"_id": {"$in": gids}}).to_list()}
        for g in gids:
            assert stored[g]["status"] == "completed" and len(stored[g]["applied"]) == 5, stored[g]
            assert stored[g]["credits"]["charged"] == {"sim": 2} and stored[g]["version"] == 2
        # An event of a generation never requested fails alone; the others in its write are stored.
        late = uuid.uuid4().hex
        results = await asyncio.gather(
            projector.apply(GenerationProgressed(generation_id=late, progress=0.1)),
            projector.apply(_requested(generation_id=uuid.uuid4().hex)),
            return_exceptions=True,
        )
        assert isinstance(results[0], UnknownGeneration) and results[1]["version"] == 1
    finally:
        await client.close()


async def test_two_replicas_folding_the_same_generations_at_once_lose_no_event(servers) -> None:
    """Each replica's batches race the other's: a replace whose version moved is read again and folded on
    top, and an event the other replica stored first is not written twice."""
    name = f"projector_{uuid.uuid4().hex[:8]}"
    clients = [AsyncMongoClient(servers.mongo_url, tz_aware=True) for _ in range(2)]
    here, there = (Projector(c[name]) for c in clients)
    gids = [uuid.uuid4().hex for _ in range(20)]
    try:
        requests = [_requested(generation_id=g) for g in gids]
        await asyncio.gather(*(here.apply(r) for r in requests))
        events = [e for g in gids for e in _events_of(g)]
        extra = [GenerationProgressed(generation_id=g, progress=0.7) for g in gids]
        await asyncio.gather(*(there.apply(r) for r in requests))  # a redelivery: `there` reads them
        # Both now hold version 1 of every generation and write at once: the events split between the
        # replicas, and some go to both (redeliveries) in different orders.
        await asyncio.gather(
            *(here.apply(e) for e in events[0::2]),
            *(there.apply(e) for e in events[1::2]),
            *(here.apply(e) for e in extra),
            *(there.apply(e) for e in reversed(extra)),
        )
        for doc in await clients[0][name][GENERATIONS].find({"_id": {"$in": gids}}).to_list():
            assert doc["status"] == "completed" and doc["credits"]["charged"] == {"sim": 2}, doc
            mine = [e.event_id for e in requests + events + extra if e.generation_id == doc["_id"]]
            assert sorted(doc["applied"]) == sorted(mine), doc
            assert len(doc["applied"]) == len(set(doc["applied"])) == 6
    finally:
        for c in clients:
            await c.close()
