"""The Simulator adapter against its fake API, over real HTTP on loopback.

Everything goes through the public paths the services use: `discover()` for the provider and
`load_fake()` for the fake. Nothing here names the provider id, so a copy of the folder still passes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest
from pixsim_provider_sdk import (
    AuthenticationError,
    ContentFilteredError,
    GenerationContext,
    JobNotFoundError,
    OperationType,
    ProviderAccount,
    ProviderStatus,
    ProviderStatusResult,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    discover,
    map_and_prepare,
    validate_params,
)
from pixsim_provider_sdk.files import cleanup_temp_paths, resolve_source
from pixsim_provider_sdk.testing.harness import generation_for, kit_fixture, wait_terminal
from pixsim_provider_sdk.testing.media import source_server

FOLDER = Path(__file__).resolve().parent
PROVIDERS_DIR = FOLDER.parent
LATENCY = 0.3
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


kit = kit_fixture(FOLDER, latency=LATENCY, fake_sources=True)  # fake results are sources of later jobs


def _load(providers_dir: Path, folder_name: str):
    registry = discover(providers_dir, include_entry_points=False)
    (item,) = [i for i in registry if Path(i.origin).name == folder_name]
    return item.provider


@pytest.fixture
async def sim(kit):
    """(provider, fake) with default knobs."""
    return await kit.connected()


def system_account(provider) -> ProviderAccount:
    return ProviderAccount(id="system", provider_id=provider.provider_id, is_system=True)


async def submit(provider, op: OperationType, account=None, **params):
    account = account or system_account(provider)
    mapped = provider.map_parameters(op, {"prompt": "a red fox in the snow", **params})
    return await provider.execute(op, account, mapped)


async def wait_done(provider, job_id: str, op: OperationType | None = None, timeout: float = 10.0):
    """Poll until terminal; return (final status, every status seen)."""
    return await wait_terminal(provider, system_account(provider), job_id, op, timeout)


# -- the happy paths --------------------------------------------------------------------------------
async def test_text_to_video_runs_to_completion_with_rising_progress(sim):
    provider, fake = sim
    result = await submit(provider, OperationType.TEXT_TO_VIDEO, duration=3, quality="360p")
    assert result.provider_job_id.startswith("job_")
    assert result.status is ProviderStatus.PENDING

    final, seen = await wait_done(provider, result.provider_job_id, OperationType.TEXT_TO_VIDEO)

    assert final.status is ProviderStatus.COMPLETED
    assert (final.width, final.height, final.duration_sec, final.progress) == (640, 360, 3.0, 1.0)
    running = [s.progress for s in seen if s.status is ProviderStatus.PROCESSING]
    assert running and all(0 < p < 1 for p in running)
    progress = [s.progress for s in seen]
    assert progress == sorted(progress), "progress never goes back"
    async with httpx.AsyncClient() as client:
        video = await client.get(final.video_url)
        thumb = await client.get(final.thumbnail_url)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert int(video.headers["content-length"]) == len(video.content) > 1000
    assert video.content[4:8] == b"ftyp"
    assert thumb.headers["content-type"] == "image/png" and thumb.content.startswith(PNG_SIGNATURE)
    submitted = [r for r in fake.requests if r.method == "POST" and r.path == "/v1/jobs"]
    assert submitted[0].headers["authorization"] == "Bearer sim-system-token"
    assert submitted[0].json == {
        "operation": "text_to_video",
        "prompt": "a red fox in the snow",
        "duration": 3,
        "quality": "360p",
        "outcome": "success",
    }


async def test_text_to_image_returns_a_png_of_the_requested_size(sim):
    provider, _ = sim
    result = await submit(provider, OperationType.TEXT_TO_IMAGE, width=128, height=96)
    final, _ = await wait_done(provider, result.provider_job_id)  # no operation: read from the job

    assert final.status is ProviderStatus.COMPLETED
    assert final.video_url is None and final.image_url.endswith(".png")
    async with httpx.AsyncClient() as client:
        image = (await client.get(final.image_url)).content
    assert image.startswith(PNG_SIGNATURE)
    assert int.from_bytes(image[16:20], "big") == 128 and int.from_bytes(image[20:24], "big") == 96


async def test_image_to_video_uploads_a_prepared_file(sim):
    provider, fake = sim
    # A real PNG, produced by a text_to_image job on the fake, served from the user's own CDN.
    image_job = await submit(provider, OperationType.TEXT_TO_IMAGE, width=64, height=64, latency=0)
    image_url = (await wait_done(provider, image_job.provider_job_id))[0].image_url
    async with httpx.AsyncClient() as client:
        image = (await client.get(image_url)).content

    op = OperationType.IMAGE_TO_VIDEO
    with source_server() as cdn:
        params = {"prompt": "make it move", "image_url": cdn.add("source.png", image)}
        assert provider.requires_file_preparation()
        mapped = await map_and_prepare(provider, generation_for(provider, op, params), resolve_source)
    assert Path(mapped["local_image_path"]).read_bytes() == image
    try:
        result = await provider.execute(op, system_account(provider), mapped)
    finally:
        cleanup_temp_paths(mapped["_temp_paths"])
    assert not any(Path(p).exists() for p in mapped["_temp_paths"])

    upload = next(r for r in fake.requests if r.path == "/v1/uploads")
    assert upload.headers["content-type"] == "image/png"
    (upload_id,) = fake.uploads
    assert fake.uploads[upload_id][0] == image
    job_body = [r for r in fake.requests if r.path == "/v1/jobs"][-1].json
    assert (
        job_body["image"] == upload_id and "image_url" not in job_body and "local_image_path" not in job_body
    )
    final, _ = await wait_done(provider, result.provider_job_id, op)
    assert final.status is ProviderStatus.COMPLETED and final.video_url


async def test_image_to_video_from_an_http_url_without_preparation(sim):
    provider, fake = sim
    image_job = await submit(provider, OperationType.TEXT_TO_IMAGE, latency=0)
    image_url = (await wait_done(provider, image_job.provider_job_id))[0].image_url

    result = await provider.execute(
        OperationType.IMAGE_TO_VIDEO, system_account(provider), {"prompt": "pan left", "image_url": image_url}
    )  # canonical params
    assert result.metadata["upload_id"] in fake.uploads


# -- how jobs end -----------------------------------------------------------------------------------
async def test_outcome_fail_ends_failed(sim):
    provider, _ = sim
    result = await submit(provider, OperationType.TEXT_TO_VIDEO, outcome="fail")
    final, _ = await wait_done(provider, result.provider_job_id)
    assert final.status is ProviderStatus.FAILED
    assert final.error_code == "generation_failed" and final.error_message


async def test_outcome_filter_ends_filtered(sim):
    provider, _ = sim
    result = await submit(provider, OperationType.TEXT_TO_IMAGE, outcome="filter")
    final, _ = await wait_done(provider, result.provider_job_id)
    assert final.status is ProviderStatus.FILTERED and final.error_code == "content_filtered"


async def test_nsfw_output_prompt_is_accepted_then_ends_filtered(sim):
    provider, _ = sim
    result = await submit(provider, OperationType.TEXT_TO_IMAGE, prompt="a beach, nsfw-output", latency=0)
    final, _ = await wait_done(provider, result.provider_job_id)
    assert final.status is ProviderStatus.FILTERED and final.image_url is None


async def test_fail_rate_knob_fails_jobs(kit):
    provider = await kit.connect(kit.start_fake(fail_rate=1.0, latency=0).url)
    result = await submit(provider, OperationType.TEXT_TO_VIDEO)
    assert (await wait_done(provider, result.provider_job_id))[0].status is ProviderStatus.FAILED


async def test_cancel_a_running_job_but_not_a_finished_one(sim):
    provider, _ = sim
    account = system_account(provider)
    running = await submit(provider, OperationType.TEXT_TO_VIDEO, latency=30)
    assert await provider.cancel(account, running.provider_job_id) is True
    status = await provider.check_status(account, running.provider_job_id)
    assert status.status is ProviderStatus.CANCELLED

    done = await submit(provider, OperationType.TEXT_TO_IMAGE, latency=0)
    assert await provider.cancel(account, done.provider_job_id) is False


# -- errors -----------------------------------------------------------------------------------------
async def test_forbidden_prompt_is_filtered_at_submit(sim):
    provider, _ = sim
    with pytest.raises(ContentFilteredError) as caught:
        await submit(provider, OperationType.TEXT_TO_VIDEO, prompt="something Forbidden here")
    assert caught.value.retryable is False


async def test_quota_knob_raises_quota_exceeded(kit):
    fake = kit.start_fake(quota=6)
    provider = await kit.connect(fake.url)
    await submit(provider, OperationType.TEXT_TO_VIDEO, duration=5)
    with pytest.raises(QuotaExceededError) as caught:
        await submit(provider, OperationType.TEXT_TO_VIDEO, duration=5)
    assert caught.value.credits_needed == 5 and not caught.value.retryable
    await submit(provider, OperationType.TEXT_TO_IMAGE)  # one credit left: an image still fits
    assert fake.credits_remaining == 0


async def test_rate_limit_knob_raises_rate_limit_with_retry_after(kit):
    provider = await kit.connect(kit.start_fake(rate_limit_every=1, retry_after=2).url)
    with pytest.raises(RateLimitError) as caught:
        await submit(provider, OperationType.TEXT_TO_VIDEO)
    assert caught.value.retry_after == 2.0 and caught.value.retryable


async def test_transient_submit_failure_is_retryable(kit):
    provider = await kit.connect(kit.start_fake(fail_submits=1).url)
    with pytest.raises(ProviderUnavailableError) as caught:
        await submit(provider, OperationType.TEXT_TO_VIDEO)
    assert caught.value.retryable
    assert (await submit(provider, OperationType.TEXT_TO_VIDEO)).provider_job_id


async def test_rate_knobs_fault_submits_at_random_and_idempotency_can_be_off(kit):
    """The chaos run's knobs: faults as rates per submit, a latency spread, and no deduplication."""

    def post(fake, key: str) -> httpx.Response:
        return httpx.post(
            f"{fake.url}/v1/jobs",
            headers={"Authorization": "Bearer t", "Idempotency-Key": key},
            json={"operation": "text_to_image", "prompt": "a fox"},
            timeout=2,
        )

    refused = kit.start_fake(fail_submit_rate=1.0)
    assert post(refused, "k").status_code == 503 and not refused.jobs and refused.faults["503"] == 1
    dropped = kit.start_fake(accept_then_drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        post(dropped, "k")
    assert len(dropped.jobs_with_reference("k")) == 1 and dropped.faults["drop"] == 1
    stalled = kit.start_fake(accept_then_stall_rate=1.0, stall_s=3)
    with pytest.raises(httpx.ReadTimeout):
        post(stalled, "k")
    assert len(stalled.jobs_with_reference("k")) == 1 and stalled.faults["stall"] == 1
    plain = kit.start_fake(idempotency=False, latency=1, latency_max=4, seed=7)
    assert post(plain, "k").json()["id"] != post(plain, "k").json()["id"]  # a second submit, a second job
    latencies = {job.latency for job in plain.jobs_with_reference("k")}
    assert len(latencies) == 2 and all(1 <= x <= 4 for x in latencies)


async def test_bad_token_raises_authentication_error_without_leaking_it(kit):
    provider = await kit.connect(kit.start_fake(tokens=["the-good-token"]).url)
    secret = "s3cr3t-token-0123456789"
    account = ProviderAccount(id="acc-1", provider_id=provider.provider_id, credentials={"token": secret})
    with pytest.raises(AuthenticationError) as caught:
        await submit(provider, OperationType.TEXT_TO_VIDEO, account=account)
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert not caught.value.retryable

    bad = ProviderAccount(id="acc-2", provider_id=provider.provider_id, credentials={"token": "bad"})
    with pytest.raises(AuthenticationError):
        await provider.check_status(bad, "job_0")
    good = ProviderAccount(
        id="acc-3", provider_id=provider.provider_id, credentials={"token": "the-good-token"}
    )
    assert (await submit(provider, OperationType.TEXT_TO_IMAGE, account=good)).provider_job_id


async def test_fake_raw_data_helpers_give_an_accepted_and_a_rejected_account(kit):
    fake = kit.start_fake(latency=0)
    provider = await kit.connect(fake.url)
    accounts = []
    for raw in (fake.valid_raw_data(), fake.invalid_raw_data()):
        data = await provider.extract_account_data(raw)
        accounts.append(
            ProviderAccount(id="acc", provider_id=provider.provider_id, credentials=data["credentials"])
        )
    assert (await submit(provider, OperationType.TEXT_TO_IMAGE, account=accounts[0])).provider_job_id
    with pytest.raises(AuthenticationError):
        await submit(provider, OperationType.TEXT_TO_IMAGE, account=accounts[1])
    # With the `tokens` knob the valid capture carries a token from that list.
    listed = kit.start_fake(tokens=["tok-listed-1"])
    assert (await provider.extract_account_data(listed.valid_raw_data()))["credentials"] == {
        "token": "tok-listed-1"
    }


async def test_unknown_job_raises_job_not_found(sim):
    provider, _ = sim
    with pytest.raises(JobNotFoundError):
        await provider.check_status(system_account(provider), "job_doesnotexist")


async def test_unreachable_api_raises_provider_unavailable(kit):
    fake = kit.start_fake()
    fake.stop()  # the port is free again: nobody answers
    provider = await kit.connect(fake.url)
    with pytest.raises(ProviderUnavailableError) as caught:
        await submit(provider, OperationType.TEXT_TO_VIDEO)
    assert caught.value.retryable


# -- spec, credits, accounts ------------------------------------------------------------------------
async def test_parameter_spec_covers_every_supported_operation(kit):
    provider = await kit.connect("http://127.0.0.1:9")
    spec = provider.get_operation_parameter_spec()
    assert set(spec) == {op.value for op in provider.supported_operations}
    for op in provider.supported_operations:
        names = {p["name"] for p in spec[op.value]["parameters"]}
        assert {"prompt", "outcome", "latency"} <= names
    t2v = spec["text_to_video"]
    assert validate_params(t2v, {"prompt": "x", "duration": 5, "quality": "720p", "outcome": "fail"}) == []
    assert validate_params(t2v, {"prompt": "x", "duration": 21}) != []
    assert validate_params(spec["image_to_video"], {"prompt": "x"}) == ["parameter 'image_url' is required"]


async def test_credits_estimate_and_actual(kit):
    provider = await kit.connect("http://127.0.0.1:9")
    credit_type = provider.manifest.credit_types[0]
    assert provider.estimate_credits(OperationType.TEXT_TO_VIDEO, {"duration": 8}) == {credit_type: 8}
    assert provider.estimate_credits(OperationType.IMAGE_TO_VIDEO, {}) == {credit_type: 5}
    assert provider.estimate_credits(OperationType.TEXT_TO_IMAGE, {}) == {credit_type: 1}

    video = GenerationContext(
        id="g", provider_id=provider.provider_id, operation_type=OperationType.TEXT_TO_VIDEO, params={}
    )
    done = ProviderStatusResult(ProviderStatus.COMPLETED, duration_sec=6.2)
    assert provider.compute_actual_credits(video, done, {credit_type: 8}) == {credit_type: 7}
    assert provider.compute_actual_credits(
        video, ProviderStatusResult(ProviderStatus.COMPLETED), {credit_type: 8}
    ) == {credit_type: 8}


async def test_expected_duration_is_the_latency_knob_or_unknown(kit):
    provider = await kit.connect("http://127.0.0.1:9")
    assert provider.expected_duration_s(OperationType.TEXT_TO_VIDEO, {"duration": 5, "latency": 12}) == 12.0
    assert provider.expected_duration_s(OperationType.TEXT_TO_IMAGE, {"latency": 0}) == 0.0
    # the remote's own default latency: the poller learns it
    assert (
        provider.expected_duration_s(OperationType.TEXT_TO_VIDEO, {"duration": 5, "quality": "720p"}) is None
    )
    assert provider.expected_duration_s(OperationType.TEXT_TO_VIDEO, {"latency": True}) is None


async def test_extract_account_data(kit):
    provider = await kit.connect("http://127.0.0.1:9")
    assert await provider.extract_account_data({"token": "t1", "email": "a@b.c"}) == {
        "email": "a@b.c",
        "credentials": {"token": "t1"},
    }
    assert await provider.extract_account_data({"cookies": {"sim_token": "t2"}}, fallback_email="f@b.c") == {
        "email": "f@b.c",
        "credentials": {"token": "t2"},
    }
    with pytest.raises(ValueError, match="no token"):
        await provider.extract_account_data({"cookies": {"other": "x"}})


# -- the folder as a template, and the fake's command line ------------------------------------------
async def test_a_copy_with_a_new_id_is_a_working_provider(tmp_path, kit, monkeypatch):
    copy = tmp_path / "providers" / "sim_copy"
    shutil.copytree(FOLDER, copy, ignore=shutil.ignore_patterns("__pycache__", "test_*.py"))
    manifest = (copy / "manifest.py").read_text()
    (copy / "manifest.py").write_text(re.sub(r'\bid="[^"]+"', 'id="sim-copy"', manifest, count=1))

    provider = _load(copy.parent, copy.name)
    assert provider.provider_id == "sim-copy"
    monkeypatch.setenv("PIXSIM_SIM_COPY_BASE_URL", kit.start_fake(latency=0).url)
    try:
        result = await submit(provider, OperationType.TEXT_TO_VIDEO)
        assert (await wait_done(provider, result.provider_job_id))[0].status is ProviderStatus.COMPLETED
    finally:
        await provider.aclose()
