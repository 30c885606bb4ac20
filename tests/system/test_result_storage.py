"""Results outlive the provider's URLs: every completed generation is copied into PixSim's storage and
served from there, byte for byte, with range requests; on both backends (the local filesystem, and S3
through moto's S3 server started here)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from conftest import build_apps, service_settings
from pixsim_runtime.inprocess import serve
from support import api_client, create, wait_archive, wait_for

pytestmark = pytest.mark.system


def expire_at_provider(fake: Any, gen: dict[str, Any]) -> dict[str, bytes]:
    """What the provider served, by variant; then its URLs stop working (an expired signature)."""
    job = gen["provider_job_id"]
    served = {
        "result": fake._output_file(f"{job}.mp4")[0],
        "thumbnail": fake._output_file(f"{job}_thumb.png")[0],
    }
    del fake.jobs[job]
    for name in [n for n in fake._files if n.startswith(job)]:
        del fake._files[name]
    return served


async def check_served(api: httpx.AsyncClient, gen: dict[str, Any], served: dict[str, bytes]) -> None:
    gid, archive = gen["id"], gen["archive"]
    assert (await api.get(gen["result"]["video_url"])).status_code == 404  # gone at the provider
    for variant, data in served.items():
        assert archive["objects"][variant] == {
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "content_type": "video/mp4" if variant == "result" else "image/png",
        }
        whole = await api.get(
            f"/api/v1/generations/{gid}/content", params={"variant": variant}, follow_redirects=True
        )
        assert (
            whole.status_code == 200
            and hashlib.sha256(whole.content).digest() == hashlib.sha256(data).digest()
        )
    video = served["result"]
    for header, expected in (
        ("bytes=10-99", video[10:100]),
        ("bytes=100-", video[100:]),
        ("bytes=-16", video[-16:]),
        (f"bytes=0-{10**9}", video),
    ):
        part = await api.get(
            f"/api/v1/generations/{gid}/content", headers={"Range": header}, follow_redirects=True
        )
        assert part.status_code == 206 and part.content == expected, (header, part.status_code)
    beyond = await api.get(
        f"/api/v1/generations/{gid}/content", headers={"Range": f"bytes={len(video)}-"}, follow_redirects=True
    )
    assert beyond.status_code == 416


async def test_a_result_outlives_its_provider_url_on_local_storage(pipeline):
    gen = await create(pipeline.api, {"prompt": "a fox", "duration": 2})
    done = await wait_for(pipeline.api, gen["id"])
    assert done["status"] == "completed"
    archived = await wait_archive(pipeline.api, gen["id"])
    served = expire_at_provider(pipeline.fake, archived)
    await check_served(pipeline.api, archived, served)
    resp = await pipeline.api.get(f"/api/v1/generations/{gen['id']}/content")
    assert resp.headers["accept-ranges"] == "bytes" and resp.headers["content-type"] == "video/mp4"
    assert archived["status"] == "completed" and archived["archive_error"] is None


# -- S3 ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


async def test_on_s3_a_failing_copy_is_retried_and_then_served_presigned(fresh_servers, sim_fake, s3):
    bucket = f"results-{uuid.uuid4().hex[:8]}"  # not created yet: the first copies fail
    settings = service_settings(
        fresh_servers,
        db="s3_storage",
        PIXSIM_STORAGE_URL=f"s3://{bucket}",
        PIXSIM_S3_ENDPOINT=s3,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        PIXSIM_ARCHIVE_RETRY=0.2,
        PIXSIM_ARCHIVE_RETRY_MAX=0.5,
    )
    from opentelemetry.sdk.trace import TracerProvider

    async with serve(*build_apps(settings, TracerProvider())) as served, api_client(served[0].url) as api:
        gen = await create(api, {"prompt": "a fox on s3", "duration": 1})
        done = await wait_for(api, gen["id"])
        assert done["status"] == "completed"
        failing = await wait_archive(api, gen["id"], status="pending")
        while not failing["archive_error"]:
            failing = await wait_archive(api, gen["id"], status="pending")
        assert failing["status"] == "completed" and failing["result"]["video_url"].startswith("http")
        assert "storage" in failing["archive_error"]
        redirect = await api.get(f"/api/v1/generations/{gen['id']}/content")
        assert redirect.status_code == 307 and redirect.headers["location"] == failing["result"]["video_url"]

        await asyncio.to_thread(s3_client(s3).create_bucket, Bucket=bucket)
        archived = await wait_archive(api, gen["id"])
        assert archived["archive"]["attempts"] >= 1 and archived["archive_error"] is None
        served_bytes = expire_at_provider(sim_fake, archived)
        presigned = await api.get(f"/api/v1/generations/{gen['id']}/content")
        assert presigned.status_code == 307 and presigned.headers["location"].startswith(
            f"{s3}/{bucket}/results/"
        )
        assert re.search(r"X-Amz-Signature=", presigned.headers["location"])
        await check_served(api, archived, served_bytes)
        listed = await asyncio.to_thread(s3_client(s3).list_objects_v2, Bucket=bucket)
        assert sorted(o["Key"] for o in listed["Contents"]) == [
            f"results/{gen['id']}/result.mp4",
            f"results/{gen['id']}/thumbnail.png",
        ]
