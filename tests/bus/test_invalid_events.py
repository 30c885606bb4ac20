"""Invalid events change nothing: each goes to the dead-letter stream with its reason, from every consumer that
reads it, and the services go on. One test per attack of issue 9."""

from __future__ import annotations

import asyncio
import hashlib
import json

import nats
import pytest
from bus.kit import (
    Books,
    Bus,
    letters_for,
    own_servers,
    publish_raw,
    readers,
    requested,
    running,
    wait_all_idle,
)
from pixsim_contracts import (
    CreditsCharged,
    CreditsReserved,
    GenerationProgressed,
    new_id,
    subjects,
)
from pixsim_contracts.limits import MAX_EVENT_MESSAGE_BYTES
from pixsim_runtime.streams import DLQ_MAX_MESSAGE_BYTES
from support import create, sse_events, wait_for

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
async def bus(sim_fake) -> Bus:
    async with own_servers() as servers, running(servers, db="invalid") as bus:
        yield bus


async def _account(bus: Bus, credits: int = 100) -> str:
    resp = await bus.api.post(
        "/api/v1/accounts",
        json={"provider_id": "sim", "raw_data": {"token": f"tok-{new_id()}"}, "credits": {"sim": credits}},
    )
    assert resp.status_code == 201, resp.text
    account = resp.json()["id"]
    for _ in range(100):  # the opening grant is booked
        view = (await bus.api.get(f"/api/v1/accounts/{account}")).json()
        if view["balances"].get("sim", {}).get("balance") == credits:
            return account
        await asyncio.sleep(0.05)
    raise AssertionError(f"opening credits never booked: {view}")


async def _still_works(bus: Bus) -> None:
    done = await create(bus.api, {"prompt": "after the attack", "duration": 1})
    assert (await wait_for(bus.api, done["id"]))["status"] == "completed"
    for name, url in bus.service_urls.items():
        async with __import__("httpx").AsyncClient() as client:
            assert (await client.get(f"{url}/readyz")).status_code == 200, name


async def test_subject_and_body_disagreeing_is_dead_lettered_and_runs_nothing(bus: Bus, sim_fake) -> None:
    a, b = new_id(), new_id()
    prompt = f"mismatch {b}"
    event = requested(b, prompt=prompt)
    nc = await bus.connect("upstream")
    try:  # as upstream systems do, on A's subject, with B in the body
        ack = await publish_raw(nc, subjects.generation(a, "requested"), event.model_dump_json().encode(), a)
    finally:
        await nc.close()
    letters = await letters_for(bus.admin, subjects.GENERATIONS_STREAM, ack.seq, {"dispatcher", "gateway"})
    for letter in letters.values():
        assert letter["reason"].startswith("subject does not match the body")
        assert f"generation_id {b!r}" in letter["reason"] and a in letter["reason"]
    for gid in (a, b):
        assert (await bus.api.get(f"/api/v1/generations/{gid}")).status_code == 404
    assert not [r for r in sim_fake.requests if (r[3] or {}).get("prompt") == prompt]

    # a credit event on another credit type's subject
    account = await _account(bus)
    before = await Books.settled(bus.db)
    charge = CreditsCharged(
        generation_id=new_id(), provider_id="sim", account_id=account, credit_type="sim", amount=5, reserved=5
    )
    ack = await publish_raw(
        bus.admin, subjects.credits("premium", "charged"), charge.model_dump_json().encode()
    )
    letters = await letters_for(bus.admin, subjects.CREDITS_STREAM, ack.seq, {"billing", "gateway"})
    assert all("credit_type 'sim'" in d["reason"] for d in letters.values())
    await wait_all_idle(bus.servers)
    assert before.changes(await Books.settled(bus.db)) == {}


async def test_a_near_1_mib_body_never_loops(bus: Bus) -> None:
    gid = new_id()
    subject = subjects.generation(gid, "requested")
    nc = await bus.connect("upstream")
    try:
        before = (await bus.admin.jetstream().stream_info(subjects.GENERATIONS_STREAM)).state.last_seq
        # Just under NATS's 1 MiB payload limit: the stream refuses it, so no consumer ever sees it.
        huge = json.dumps(
            {**requested(gid).model_dump(mode="json"), "params": {"prompt": "x" * 1_040_000}}
        ).encode()
        assert 1_000_000 < len(huge) < 1024 * 1024
        with pytest.raises(nats.js.errors.APIError, match="(?i)maximum.*size|size.*exceed"):
            await publish_raw(nc, subject, huge, gid)
        assert (await bus.admin.jetstream().stream_info(subjects.GENERATIONS_STREAM)).state.last_seq == before
        # Just under the stream's own limit: stored, refused by every reader, dead-lettered as an excerpt.
        big = json.dumps(
            {
                **requested(gid).model_dump(mode="json"),
                "params": {"prompt": "y" * (MAX_EVENT_MESSAGE_BYTES - 2_000)},
            }
        ).encode()
        ack = await publish_raw(nc, subject, big, gid)
    finally:
        await nc.close()
    letters = await letters_for(bus.admin, subjects.GENERATIONS_STREAM, ack.seq, {"dispatcher", "gateway"})
    for letter in letters.values():
        assert "params" in letter["reason"] and "more than 65536" in letter["reason"]
        assert letter["body_bytes"] == len(big) and letter["body_truncated"] is True
        assert letter["body_sha256"] == hashlib.sha256(big).hexdigest()
        assert big.decode().startswith(letter["body"]) and len(letter["body"]) <= 4096
        assert len(json.dumps(letter)) < DLQ_MAX_MESSAGE_BYTES
        assert letter["deliveries"] == 1  # dead-lettered at once, never redelivered
    await wait_all_idle(bus.servers, timeout=20)
    assert (await bus.api.get(f"/api/v1/generations/{gid}")).status_code == 404
    await _still_works(bus)


async def test_a_json_array_is_dead_lettered_and_never_breaks_an_sse_stream(bus: Bus) -> None:
    nc = await bus.connect("upstream")
    try:
        gid = new_id()
        ack = await publish_raw(nc, subjects.generation(gid, "requested"), b"[1, 2, 3]", gid)
    finally:
        await nc.close()
    letters = await letters_for(bus.admin, subjects.GENERATIONS_STREAM, ack.seq, {"dispatcher", "gateway"})
    assert all(d["reason"].startswith("invalid event:") for d in letters.values())
    assert (await bus.api.get(f"/api/v1/generations/{gid}")).status_code == 404

    # On a running generation's own subjects: an array, a string, another generation's event. The SSE
    # stream skips them all and goes on to the end.
    created = await create(bus.api, {"prompt": "followed", "duration": 1, "latency": 1.5})
    gid = created["id"]
    other = GenerationProgressed(generation_id=new_id(), progress=0.5)
    junk = [
        (subjects.generation(gid, "progressed"), b"[]"),
        (subjects.generation(gid, "progressed"), b'"x"'),
        (subjects.generation(gid, "progressed"), other.model_dump_json().encode()),
        (subjects.generation(gid, "completed"), b"[{}]"),
    ]
    seqs = [((await publish_raw(bus.admin, s, body)).seq, s) for s, body in junk]
    events = await sse_events(bus.api.base_url, gid)
    kinds = [k for k, _ in events]
    assert kinds[0] == "generation.requested" and kinds[-1] == "generation.completed", kinds
    assert all(e["generation_id"] == gid for _, e in events)
    for seq, subject in seqs:
        await letters_for(bus.admin, subjects.GENERATIONS_STREAM, seq, readers(subject))
    assert (await wait_for(bus.api, gid))["status"] == "completed"


async def test_a_string_amount_or_a_negative_balance_moves_no_credit(bus: Bus) -> None:
    account = await _account(bus, credits=50)
    await wait_all_idle(bus.servers)
    before = await Books.settled(bus.db)
    base = {
        "event_id": new_id(),
        "version": 1,
        "occurred_at": "2026-01-01T00:00:00Z",
        "provider_id": "sim",
        "account_id": account,
        "credit_type": "sim",
    }
    forged = [
        {**base, "type": "credits.charged", "generation_id": new_id(), "amount": "10", "reserved": 10},
        {**base, "type": "credits.charged", "generation_id": new_id(), "amount": 10, "reserved": "10"},
        {**base, "type": "credits.reserved", "generation_id": new_id(), "amount": 10.0},
        {**base, "type": "credits.reserved", "generation_id": new_id(), "amount": True},
        {**base, "type": "credits.granted", "amount": "1e9"},
        {**base, "type": "credits.granted", "amount": 10**12},
        {**base, "type": "credits.released", "generation_id": new_id(), "amount": -10, "reason": "x"},
        {**base, "type": "credits.synced", "provider_balance": -5},
        {**base, "type": "credits.synced", "provider_balance": "500"},
    ]
    seqs = []
    for body in forged:
        body["event_id"] = new_id()
        subject = subjects.credits("sim", body["type"].split(".", 1)[1])
        seqs.append((await publish_raw(bus.admin, subject, json.dumps(body).encode())).seq)
    for seq, body in zip(seqs, forged, strict=True):
        letters = await letters_for(bus.admin, subjects.CREDITS_STREAM, seq, {"billing", "gateway"})
        field = next(
            k
            for k in ("amount", "reserved", "provider_balance")
            if k in body and not (type(body[k]) is int and 0 <= body[k] <= 10**9)
        )
        assert all(
            d["reason"].startswith("invalid event:") and field in d["reason"] for d in letters.values()
        )
    await wait_all_idle(bus.servers)
    assert before.changes(await Books.settled(bus.db)) == {}
    view = (await bus.api.get(f"/api/v1/accounts/{account}")).json()["balances"]["sim"]
    assert (view["balance"], view["reserved"], view["available"], view["spent"]) == (50, 0, 50, 0)


async def test_events_for_unknown_generations_or_accounts_create_nothing(bus: Bus) -> None:
    await wait_all_idle(bus.servers)
    before = await Books.settled(bus.db)
    gid = new_id()
    reserved = CreditsReserved(
        generation_id=gid, provider_id="sim", account_id="acc_nobody", credit_type="sim", amount=3
    )
    progressed = GenerationProgressed(generation_id=gid, progress=0.3)
    r = await publish_raw(bus.admin, reserved.subject, reserved.model_dump_json().encode())
    p = await publish_raw(bus.admin, progressed.subject, progressed.model_dump_json().encode())
    credit_letters = await letters_for(bus.admin, subjects.CREDITS_STREAM, r.seq, {"billing", "gateway"})
    assert "unknown account 'acc_nobody'" in credit_letters["billing"]["reason"]
    assert "UnknownGeneration" in credit_letters["gateway"]["reason"]
    letters = await letters_for(bus.admin, subjects.GENERATIONS_STREAM, p.seq, {"gateway"})
    assert "never seen" in letters["gateway"]["reason"]
    await wait_all_idle(bus.servers)
    assert (await bus.api.get(f"/api/v1/generations/{gid}")).status_code == 404
    assert before.changes(await Books.settled(bus.db)) == {}


async def test_streams_and_consumers_have_limits(bus: Bus) -> None:
    js = bus.admin.jetstream()
    for stream in subjects.STREAM_SUBJECTS:
        config = (await js.stream_info(stream)).config
        assert 0 < config.max_msg_size <= MAX_EVENT_MESSAGE_BYTES
        if stream == subjects.DLQ_STREAM:
            assert config.max_msg_size == DLQ_MAX_MESSAGE_BYTES and config.max_age and config.max_bytes
    from pixsim_runtime.bus_auth import DURABLES

    for owned in DURABLES.values():
        for stream, durable in owned:
            assert 0 < (await js.consumer_info(stream, durable)).config.max_deliver <= 10_100


async def test_an_http_request_outside_the_event_bounds_is_a_422(bus: Bus) -> None:
    # The API's own checks pass these; the event they would make is outside the contract's bounds.
    for extra in ({"priority": 10**9}, {"user_id": "line\nbreak"}):
        resp = await bus.api.post(
            "/api/v1/generations",
            json={
                "provider_id": "sim",
                "operation_type": "text_to_video",
                "params": {"prompt": "p", "duration": 1},
                **extra,
            },
        )
        assert resp.status_code == 422, resp.text
        error = resp.json()["error"]
        assert error["code"] == "invalid_request" and next(iter(extra)) in error["message"]
