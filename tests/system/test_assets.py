"""Uploads: `POST /api/v1/assets`, then `asset://<id>` as a media parameter, read back by the dispatcher
from PixSim's storage and handed to the provider byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import uuid

import nats
import pytest
from conftest import PROVIDERS
from pixsim_contracts import GenerationRequested, OperationType, subjects
from pixsim_provider_sdk.testing.fake_http import load_fake
from support import create, wait_for

pytestmark = pytest.mark.system

make_png = sys.modules[load_fake(PROVIDERS / "sim").__module__].make_png


def png(key: str | None = None) -> bytes:
    return make_png(32, 24, key or uuid.uuid4().hex)


async def upload(api, data: bytes, filename: str = "frame.png", content_type: str = "image/png"):
    return await api.post("/api/v1/assets", files={"file": (filename, data, content_type)})


async def test_an_uploaded_image_reaches_the_provider_byte_for_byte(pipeline):
    data = png()
    resp = await upload(pipeline.api, data, filename="../../etc/frame.png")
    assert resp.status_code == 201, resp.text
    asset = resp.json()
    assert asset["url"] == f"asset://{asset['id']}" and asset["content_type"] == "image/png"
    assert asset["size"] == len(data) and asset["sha256"] == hashlib.sha256(data).hexdigest()
    assert asset["filename"] == "frame.png"
    assert (await pipeline.api.get(f"/api/v1/assets/{asset['id']}")).json() == asset

    gen = await create(
        pipeline.api,
        {"image_url": asset["url"], "prompt": "it moves", "duration": 1},
        operation="image_to_video",
    )
    done = await wait_for(pipeline.api, gen["id"])
    assert done["status"] == "completed", done
    assert data in [body for body, _ in pipeline.fake.uploads.values()]


async def test_the_type_comes_from_the_bytes_not_the_claim(pipeline):
    resp = await upload(pipeline.api, b"#!/bin/sh\nrm -rf /\n" * 10, filename="evil.png")
    assert resp.status_code == 415 and resp.json()["error"]["code"] == "unsupported_media_type"
    gif = await upload(pipeline.api, b"GIF89a" + bytes(100), filename="x.bin", content_type="text/plain")
    assert gif.status_code == 201 and gif.json()["content_type"] == "image/gif"


async def test_a_missing_asset_or_the_wrong_kind_is_refused_before_anything_runs(pipeline):
    missing = await pipeline.api.post(
        "/api/v1/generations",
        json={
            "provider_id": "sim",
            "operation_type": "image_to_video",
            "params": {"image_url": "asset://nope", "prompt": "x", "duration": 1},
        },
    )
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "asset_not_found"
    assert (await pipeline.api.get("/api/v1/assets/nope")).status_code == 404

    video = (await upload(pipeline.api, bytes(4) + b"ftypisom" + bytes(64), filename="clip.mp4")).json()
    assert video["content_type"] == "video/mp4"
    gen = await create(
        pipeline.api, {"image_url": video["url"], "prompt": "x", "duration": 1}, operation="image_to_video"
    )
    done = await wait_for(pipeline.api, gen["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "param_invalid", done
    assert "not an image" in done["error"]["message"]


async def test_the_dispatcher_refuses_another_users_asset_from_upstream(pipeline):
    """An upstream publisher bypasses the gateway's check: the dispatcher checks the owner again."""
    asset = (await upload(pipeline.api, png())).json()  # the admin's
    gid = f"upstream-asset-{uuid.uuid4().hex[:8]}"
    event = GenerationRequested(
        event_id=f"{gid}.requested",
        generation_id=gid,
        provider_id="sim",
        operation_type=OperationType.IMAGE_TO_VIDEO,
        user_id="mallory",
        params={"image_url": asset["url"], "prompt": "x", "duration": 1},
    )
    nc = await nats.connect(pipeline.servers.nats_url)
    try:
        await nc.jetstream().publish(
            subjects.generation(gid, "requested"),
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": gid},
        )
    finally:
        await nc.close()
    for _ in range(200):
        if (await pipeline.api.get(f"/api/v1/generations/{gid}")).status_code == 200:
            break
        await asyncio.sleep(0.05)
    done = await wait_for(pipeline.api, gid)
    assert done["status"] == "failed" and done["error"]["code"] == "param_invalid"
    assert "no asset" in done["error"]["message"]
