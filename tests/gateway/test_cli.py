"""The `pixsim` CLI against the real in-process pipeline.

The pipeline's servers run in this test's event loop, so the (sync) CLI runs in a thread.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import httpx
import pytest
from pixsim_gateway import cli
from pixsim_gateway.cli import app, parse_params
from typer.testing import CliRunner

pytestmark = pytest.mark.system

runner = CliRunner()


async def pixsim(pipeline, *args: str, api: str | None = None):
    return await asyncio.to_thread(runner.invoke, app, ["--api", api or pipeline.gateway_url, *args])


def generation_id(output: str) -> str:
    match = re.search(r"generation (\w+)", output)
    assert match, output
    return match.group(1)


def test_params_are_json_when_they_parse():
    assert parse_params(["duration=5", "prompt=a fox", "flag=true", 'x={"a": 1}', "empty="]) == {
        "duration": 5,
        "prompt": "a fox",
        "flag": True,
        "x": {"a": 1},
        "empty": "",
    }


async def test_generate_waits_for_the_result_and_status_shows_it(pipeline):
    result = await pixsim(pipeline, "generate", "--prompt", "a fox", "-P", "duration=1")
    assert result.exit_code == 0, result.output
    gid = generation_id(result.output)
    assert re.search(r"video_url: http://\S+", result.output), result.output
    assert "credits charged: sim=1" in result.output

    status = await pixsim(pipeline, "status", gid, "--json")
    assert status.exit_code == 0, status.output
    body = json.loads(status.stdout)
    assert body["id"] == gid and body["status"] == "completed" and body["params"]["duration"] == 1

    panel = await pixsim(pipeline, "status", gid)
    assert panel.exit_code == 0 and "completed" in panel.output and gid in panel.output


async def test_a_failed_job_exits_1_with_its_error_code(pipeline):
    result = await pixsim(
        pipeline, "generate", "--prompt", "a storm", "-P", "duration=1", "-P", "outcome=fail"
    )
    assert result.exit_code == 1, result.output
    gid = generation_id(result.output)
    error = (await pipeline.api.get(f"/api/v1/generations/{gid}")).json()["error"]
    assert "failed" in result.output and error["code"] in result.output


async def test_no_wait_list_and_cancel(pipeline):
    result = await pixsim(pipeline, "generate", "--prompt", "slow", "-P", "latency=30", "--no-wait")
    assert result.exit_code == 0, result.output
    gid = generation_id(result.output)
    listed = await pixsim(pipeline, "list", "--provider", "sim", "--limit", "5")
    assert listed.exit_code == 0 and gid in listed.output
    cancelled = await pixsim(pipeline, "cancel", gid)
    assert cancelled.exit_code == 0 and f"cancel requested for {gid}" in cancelled.output


async def test_providers_lists_sim_and_shows_its_parameters(pipeline):
    result = await pixsim(pipeline, "providers")
    assert result.exit_code == 0, result.output
    assert "sim" in result.output and "Simulator" in result.output
    one = await pixsim(pipeline, "providers", "sim")
    assert one.exit_code == 0 and "text_to_video" in one.output and "duration" in one.output


async def test_api_errors_exit_2_with_the_apis_message(pipeline):
    result = await pixsim(pipeline, "generate", "--prompt", "a fox", "-P", "duration=999")
    assert result.exit_code == 2, result.output
    assert "error: param_invalid:" in result.stderr and "duration" in result.stderr
    missing = await pixsim(pipeline, "status", "nope")
    assert missing.exit_code == 2 and "generation_not_found" in missing.stderr


async def test_an_unreachable_api_exits_2_with_a_hint(pipeline):
    result = await pixsim(pipeline, "providers", api="http://127.0.0.1:1")
    assert result.exit_code == 2, result.output
    assert "is PixSim running? start it with make run" in result.stderr


async def test_events_of_a_finished_generation(pipeline):
    result = await pixsim(pipeline, "generate", "--prompt", "a fox", "-P", "duration=1")
    assert result.exit_code == 0, result.output
    gid = generation_id(result.output)
    events = await pixsim(pipeline, "events", gid)
    assert events.exit_code == 0, events.output
    lines = events.output.splitlines()
    assert "generation.requested" in lines[0] and "prompt=a fox" in lines[0]
    assert "generation.completed" in lines[-1] and "video_url" in lines[-1]


async def test_generate_falls_back_to_polling_when_the_stream_drops(pipeline, monkeypatch):
    def dropped(self, generation_id):
        yield "generation.requested", {}
        raise httpx.RemoteProtocolError("peer closed connection")

    monkeypatch.setattr(cli.Api, "events", dropped)
    result = await pixsim(pipeline, "generate", "--prompt", "a fox", "-P", "duration=1")
    assert result.exit_code == 0, result.output
    assert "video_url: http" in result.output


async def test_the_same_idempotency_key_gives_the_same_generation(pipeline):
    args = ["generate", "--prompt", "once", "--idempotency-key", f"cli-{uuid.uuid4()}", "--no-wait"]
    first, second = await pixsim(pipeline, *args), await pixsim(pipeline, *args)
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert generation_id(first.output) == generation_id(second.output)


async def test_generate_with_a_local_image_uploads_it_first(pipeline, tmp_path):
    import sys

    from conftest import PROVIDERS
    from pixsim_provider_sdk.testing.fake_http import load_fake

    make_png = sys.modules[load_fake(PROVIDERS / "sim").__module__].make_png
    frame = tmp_path / "frame.png"
    frame.write_bytes(data := make_png(16, 16, str(tmp_path)))
    result = await pixsim(
        pipeline, "generate", "--image", str(frame), "--prompt", "it moves", "-P", "duration=1"
    )
    assert result.exit_code == 0, result.output
    gen = (await pipeline.api.get(f"/api/v1/generations/{generation_id(result.output)}")).json()
    assert gen["operation_type"] == "image_to_video" and gen["params"]["image_url"].startswith("asset://")
    assert data in [body for body, _ in pipeline.fake.uploads.values()]
    missing = await pixsim(pipeline, "generate", "--image", str(tmp_path / "nope.png"))
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
