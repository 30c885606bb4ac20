"""Upstream systems publish GenerationRequested straight onto NATS, as the NATS user `upstream`."""

from __future__ import annotations

import asyncio
import json
import time

import nats
import pytest
from pixsim_contracts import GenerationRequested, new_id, subjects
from support import dead_letters_since, wait_for

pytestmark = pytest.mark.system


async def _last_seq(js) -> int:
    return (await js.stream_info(subjects.DLQ_STREAM)).state.last_seq


async def _upstream(servers):
    """A connection as an upstream system has it: the user `upstream`, which may only publish requests."""
    return await nats.connect(servers.service_nats_url, **servers.nats_options("upstream"))


async def test_duplicate_upstream_publish_gives_one_generation(pipeline):
    gid = new_id()
    prompt = f"upstream {gid}"
    event = GenerationRequested(
        generation_id=gid,
        provider_id="sim",
        operation_type="text_to_video",
        params={"prompt": prompt, "duration": 1},
    )
    nc = await _upstream(pipeline.servers)
    try:
        js = nc.jetstream()
        first = await js.publish(
            subjects.generation(gid, "requested"),
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": gid},
        )
        again = await js.publish(
            subjects.generation(gid, "requested"),
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": gid},
        )
    finally:
        await nc.close()
    assert not first.duplicate and again.duplicate
    done = await wait_for(pipeline.api, gid)
    assert done["status"] == "completed"
    submits = [
        r
        for r in pipeline.fake.requests
        if r[0] == "POST" and r[1] == "/v1/jobs" and (r[3] or {}).get("prompt") == prompt
    ]
    assert len(submits) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"this is not json",
        json.dumps({"type": "generation.requested", "generation_id": "g-bad", "provider_id": "sim"}).encode(),
        json.dumps(
            {
                "type": "generation.requested",
                "generation_id": "g-bad2",
                "provider_id": "sim",
                "operation_type": "make_coffee",
                "params": {},
            }
        ).encode(),
    ],
)
async def test_malformed_upstream_event_is_dead_lettered_and_consumer_keeps_working(pipeline, body):
    nc = await nats.connect(pipeline.servers.nats_url)  # the tests' own user reads the dead letters
    up = await _upstream(pipeline.servers)
    try:
        js = nc.jetstream()
        since = await _last_seq(js)
        marker = new_id()
        await up.jetstream().publish(
            subjects.generation(marker, "requested"), body, headers={"Nats-Msg-Id": marker}
        )
        deadline = time.monotonic() + 10
        letters: list[dict] = []
        while time.monotonic() < deadline:
            letters = [d for d in await dead_letters_since(js, "dispatcher", since) if marker in d["subject"]]
            if letters:
                break
            await asyncio.sleep(0.1)
    finally:
        await nc.close()
        await up.close()
    assert len(letters) == 1
    assert letters[0]["reason"].startswith("invalid event:")
    assert letters[0]["body"] == body.decode() and letters[0]["service"] == "dispatcher"
    if b"make_coffee" in body:
        assert "operation_type" in letters[0]["reason"]
    # the consumer moved on: a valid request right after still completes
    ok = GenerationRequested(
        generation_id=new_id(),
        provider_id="sim",
        operation_type="text_to_video",
        params={"prompt": "after the bad one", "duration": 1},
    )
    nc = await _upstream(pipeline.servers)
    try:
        await nc.jetstream().publish(
            ok.subject, ok.model_dump_json().encode(), headers={"Nats-Msg-Id": ok.generation_id}
        )
    finally:
        await nc.close()
    assert (await wait_for(pipeline.api, ok.generation_id))["status"] == "completed"


async def test_upstream_request_for_unknown_provider_fails_cleanly(pipeline):
    event = GenerationRequested(
        generation_id=new_id(), provider_id="nobody", operation_type="text_to_video", params={"prompt": "x"}
    )
    nc = await _upstream(pipeline.servers)
    try:
        await nc.jetstream().publish(
            event.subject, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.generation_id}
        )
    finally:
        await nc.close()
    done = await wait_for(pipeline.api, event.generation_id)
    assert done["status"] == "failed" and done["error"]["code"] == "provider_not_found"
