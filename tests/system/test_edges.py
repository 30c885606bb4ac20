"""Edges of the pipeline: retries, file preparation, deadlines, billing refusals, health probes."""

from __future__ import annotations

import asyncio
import glob
import json
import struct
import tempfile
import time
import zlib
from pathlib import Path

import nats
import pytest
from conftest import build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_contracts import CreditsCharged, new_id, subjects
from pixsim_runtime.inprocess import serve
from support import api_client, create, wait_for

pytestmark = pytest.mark.system


def _png(path: Path) -> None:
    raw = b"".join(b"\x00" + b"\x80\x40\x20" * 4 for _ in range(4))
    chunk = lambda kind, data: (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    )
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def test_image_to_video_prepares_the_file_and_cleans_it_up(pipeline, tmp_path):
    image = tmp_path / "start.png"
    _png(image)
    name = f"start-{new_id()}.png"
    pipeline.fake.uploads[name] = (image.read_bytes(), "image/png")  # the fake serves it (an allowed host)
    before = set(glob.glob(f"{tempfile.gettempdir()}/pixsim-src-*"))
    created = await create(
        pipeline.api,
        {"prompt": "animate", "image_url": f"{pipeline.fake.url}/v1/files/{name}", "duration": 1},
        operation="image_to_video",
    )
    done = await wait_for(pipeline.api, created["id"])
    assert done["status"] == "completed", done
    uploads = [r for r in pipeline.fake.requests if r[0] == "POST" and r[1] == "/v1/uploads"]
    assert uploads, "the adapter uploaded the prepared file"
    assert set(glob.glob(f"{tempfile.gettempdir()}/pixsim-src-*")) <= before  # temp files removed


async def test_transient_submit_errors_are_retried(pipeline):
    pipeline.fake.fail_submits = 2  # the next two submits answer 503
    created = await create(pipeline.api, {"prompt": "retry me", "duration": 1})
    done = await wait_for(pipeline.api, created["id"])
    assert done["status"] == "completed"
    assert pipeline.fake.fail_submits == 0


async def test_permanent_provider_errors_fail_with_their_code(pipeline):
    created = await create(pipeline.api, {"prompt": "something forbidden", "duration": 1})
    done = await wait_for(pipeline.api, created["id"])
    assert done["status"] == "filtered" and done["error"]["code"].startswith("content_")
    assert done["credits"]["reserved"] == {}  # never reached the provider: nothing reserved


async def test_job_past_its_deadline_fails_with_provider_timeout(fresh_servers, sim_fake):
    settings = service_settings(fresh_servers, db="deadline", PIXSIM_JOB_TIMEOUT=1)
    async with serve(*build_apps(settings, TracerProvider())) as served, api_client(served[0].url) as api:
        created = await create(api, {"prompt": "too slow", "duration": 1, "latency": 30})
        done = await wait_for(api, created["id"])
        assert done["status"] == "failed" and done["error"]["code"] == "provider_timeout"
        # The release travels on the credits stream, projected on its own: it may land a moment later.
        for _ in range(300):
            if done["credits"]["released"]:
                break
            await asyncio.sleep(0.1)
            done = (await api.get(f"/api/v1/generations/{created['id']}")).json()
        assert done["credits"]["released"] == {"sim": 1}


async def test_billing_refuses_a_credit_type_the_manifest_does_not_declare(pipeline):
    event = CreditsCharged(
        generation_id=new_id(),
        provider_id="sim",
        account_id="acc-x",
        credit_type="gold",
        amount=5,
        reserved=0,
    )
    nc = await nats.connect(pipeline.servers.nats_url)
    try:
        js = nc.jetstream()
        since = (await js.stream_info(subjects.DLQ_STREAM)).state.last_seq
        await js.publish(
            event.subject, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.event_id}
        )
        sub = await js.subscribe(subjects.dlq("billing"), ordered_consumer=True)
        deadline, letter = time.monotonic() + 10, None
        while letter is None and time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            if msg.metadata.sequence.stream > since and event.event_id in msg.data.decode():
                letter = json.loads(msg.data)
        await sub.unsubscribe()
    finally:
        await nc.close()
    assert letter is not None
    assert "'gold'" in letter["reason"] and "declared: sim" in letter["reason"]


async def test_health_and_readiness_probes(pipeline):
    assert (await pipeline.api.get("/healthz")).json() == {"status": "ok"}
    ready = await pipeline.api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"nats": True, "mongo": True}


async def test_list_is_newest_first_with_a_cursor(pipeline):
    ids = [
        (await create(pipeline.api, {"prompt": f"page {i}", "duration": 1}, user_id="pager"))["id"]
        for i in range(3)
    ]
    await asyncio.gather(*(wait_for(pipeline.api, gid) for gid in ids))
    first = (await pipeline.api.get("/api/v1/generations", params={"limit": 2})).json()
    assert [g["id"] for g in first["items"]] == ids[::-1][:2] and first["next_cursor"]
    second = (
        await pipeline.api.get("/api/v1/generations", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert second["items"][0]["id"] == ids[0]
    bad = await pipeline.api.get("/api/v1/generations", params={"cursor": "garbage"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
