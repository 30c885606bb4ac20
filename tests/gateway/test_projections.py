"""The read model: only `requested` creates a generation, and only the first one counts; the projector
stores each event with one write and loses nothing to another replica."""

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


async def test_the_projector_writes_once_per_event_and_loses_nothing_to_another_replica(servers) -> None:
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
        # The process's consumers at once (the generations and the credits stream): one write each.
        await asyncio.gather(here.apply(reserved), here.apply(progressed))
        assert commands.count == {"insert generations": 1, "update generations": 2}
        # Repeats the cache knows of cost nothing.
        assert await here.apply(requested) is None and await here.apply(reserved) is None
        assert commands.count == {"insert generations": 1, "update generations": 2}
        # Another replica writes: this one's cached version is stale, so it reads once and folds on top.
        charged = CreditsCharged(**common, credit_type="sim", amount=2, reserved=2)
        assert (await there.apply(charged))["version"] == 4
        completed = GenerationCompleted(**common, result={"video_url": "https://cdn.example/v.mp4"})
        doc = await here.apply(completed)
        assert doc["version"] == 5 and doc["status"] == "completed"
        assert doc["credits"] == {"reserved": {"sim": 2}, "charged": {"sim": 2}, "released": {}}
        assert commands.count["find generations"] == 1
        stored = await client[name][GENERATIONS].find_one({"_id": gid})
        assert sorted(stored["applied"]) == sorted(
            e.event_id for e in (requested, reserved, progressed, charged, completed)
        )
    finally:
        await client.close()
        await other.close()
