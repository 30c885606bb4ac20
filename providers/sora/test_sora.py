"""The Sora adapter against its fake Videos API, over real HTTP on loopback.

The provider comes from `discover()` and the fake from `load_fake()`, the paths the services use.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest
from pixsim_provider_sdk import (
    AuthenticationError,
    ConcurrentLimitError,
    ContentFilteredError,
    GenerationContext,
    InvalidParametersError,
    JobNotFoundError,
    OperationType,
    ProviderAccount,
    ProviderError,
    ProviderStatus,
    ProviderStatusResult,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    UnsupportedOperationError,
    map_and_prepare,
    validate_params,
)
from pixsim_provider_sdk.files import cleanup_temp_paths, resolve_source
from pixsim_provider_sdk.testing.fake_http import JsonFakeServer, json_response
from pixsim_provider_sdk.testing.harness import generation_for, kit_fixture, wait_until
from pixsim_provider_sdk.testing.media import make_png, source_server

FOLDER = Path(__file__).resolve().parent
LATENCY = 0.3
T2V, I2V = OperationType.TEXT_TO_VIDEO, OperationType.IMAGE_TO_VIDEO
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

kit = kit_fixture(FOLDER, latency=LATENCY)


@pytest.fixture
def provider(kit):
    return kit.provider


@pytest.fixture
async def sora(kit):
    """(provider, fake, account) with default knobs."""
    provider, fake = await kit.connected()
    return provider, fake, await kit.account(fake.valid_raw_data())


async def submit(provider, account, op=T2V, **params):
    mapped = provider.map_parameters(op, {"prompt": "a red fox in the snow", **params})
    return await provider.execute(op, account, mapped)


async def wait_for(
    provider, account, job_id: str, until=lambda s: s.status.is_terminal, timeout: float = 10.0
):
    """Poll until `until(status)`; return (that status, every status seen)."""
    return await wait_until(provider, account, job_id, T2V, until, timeout)


def jwt(claims: dict) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


# -- the happy paths --------------------------------------------------------------------------------
async def test_text_to_video_runs_to_completion_with_a_downloadable_result(sora):
    provider, fake, account = sora
    result = await submit(provider, account, duration=8, size="1280x720", model="sora-2-pro")
    assert result.provider_job_id.startswith("video_") and result.status is ProviderStatus.PENDING

    final, seen = await wait_for(provider, account, result.provider_job_id)

    assert final.status is ProviderStatus.COMPLETED and final.progress == 1.0
    assert (final.width, final.height, final.duration_sec) == (1280, 720, 8.0)
    assert final.metadata["model"] == "sora-2-pro" and final.metadata["expires_at"] > time.time()
    progress = [s.progress for s in seen]
    assert progress == sorted(progress) and any(0 < p < 1 for p in progress)
    created = [r for r in fake.requests if (r.method, r.path) == ("POST", "/v1/videos")]
    assert created[0].json == {
        "model": "sora-2-pro",
        "prompt": "a red fox in the snow",
        "seconds": "8",
        "size": "1280x720",
    }
    assert created[0].headers["authorization"] == f"Bearer {fake.valid_key}"

    video, content_type = await provider.download_content(account, result.provider_job_id)
    assert content_type == "video/mp4" and video[4:8] == b"ftyp"
    async with httpx.AsyncClient() as client:
        auth = {"Authorization": f"Bearer {fake.valid_key}"}
        thumb = await client.get(final.thumbnail_url, headers=auth)
        same = await client.get(final.video_url, headers=auth)
        anonymous = await client.get(final.video_url)
    assert thumb.headers["content-type"] == "image/png" and thumb.content.startswith(PNG_SIGNATURE)
    assert same.content == video and int(same.headers["content-length"]) == len(video)
    assert anonymous.status_code == 401  # like every Videos API call, content needs the bearer token


async def test_image_to_video_uploads_a_prepared_file_as_multipart(sora):
    provider, fake, account = sora
    frame = make_png(1280, 720, "frame")
    with source_server() as cdn:
        params = {"prompt": "make it move", "image_url": cdn.add("frame.png", frame)}
        assert provider.requires_file_preparation()
        mapped = await map_and_prepare(provider, generation_for(provider, I2V, params), resolve_source)
    assert mapped["_temp_paths"] == [mapped["local_image_path"]]  # a temp copy, the caller's to delete
    assert Path(mapped["local_image_path"]).read_bytes() == frame
    try:
        result = await provider.execute(I2V, account, mapped)
    finally:
        cleanup_temp_paths(mapped["_temp_paths"])  # the dispatcher's side of the contract
    assert not any(Path(p).exists() for p in mapped["_temp_paths"])

    upload = next(r for r in fake.requests if (r.method, r.path) == ("POST", "/v1/videos"))
    assert upload.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert result.metadata["size"] == "1280x720"  # taken from the image, which must match exactly
    video = fake.videos[result.provider_job_id]
    assert (video.reference, video.size, video.prompt) == (
        ("image/png", 1280, 720),
        "1280x720",
        "make it move",
    )
    final, _ = await wait_for(provider, account, result.provider_job_id)
    assert final.status is ProviderStatus.COMPLETED and (final.width, final.height) == (1280, 720)


async def test_image_to_video_from_an_http_url_without_preparation(sora):
    provider, fake, account = sora
    with source_server() as cdn:  # a plain web server holding the image
        url = cdn.add("frame.png", make_png(720, 1280, "portrait"))
        result = await provider.execute(I2V, account, {"prompt": "pan left", "image_url": url})
    assert result.metadata["size"] == "720x1280"  # canonical params, mapped and sized by execute itself
    assert fake.videos[result.provider_job_id].reference == ("image/png", 720, 1280)


async def test_image_that_does_not_match_the_size_is_refused_before_upload(sora):
    provider, fake, account = sora
    square = make_png(64, 64, "square")
    with source_server() as cdn:
        url = cdn.add("square.png", square)
        with pytest.raises(InvalidParametersError, match="64x64"):
            await provider.execute(I2V, account, {"prompt": "x", "image_url": url})
        with pytest.raises(InvalidParametersError, match="must match"):
            await provider.execute(I2V, account, {"prompt": "x", "image_url": url, "size": "720x1280"})
    assert not [r for r in fake.requests if r.path == "/v1/videos"]
    # The service enforces the same rule: a raw request gets OpenAI's 400.
    files = {"input_reference": ("square.png", square, "image/png")}
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            f"{fake.url}/v1/videos",
            data={"prompt": "x"},
            files=files,
            headers={"Authorization": f"Bearer {fake.valid_key}"},
        )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "input_reference"


# -- every remote status ----------------------------------------------------------------------------
async def test_queued_and_in_progress_map_to_pending_and_processing(kit):
    fake = kit.start_fake(latency=1.0, queue_fraction=0.5)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    job = (await submit(provider, account)).provider_job_id

    queued = await provider.check_status(account, job)
    assert (queued.status, queued.progress, queued.metadata["remote_status"]) == (
        ProviderStatus.PENDING,
        0.0,
        "queued",
    )
    running, _ = await wait_for(provider, account, job, until=lambda s: s.status is ProviderStatus.PROCESSING)
    assert running.metadata["remote_status"] == "in_progress" and 0 < running.progress < 1
    assert running.video_url is None and running.error_code is None


async def test_failed_maps_to_failed_with_the_service_error(kit):
    fake = kit.start_fake(fail_rate=1.0, latency=0)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    final = await provider.check_status(account, (await submit(provider, account)).provider_job_id)
    assert final.status is ProviderStatus.FAILED and final.metadata["remote_status"] == "failed"
    assert final.error_code == "video_generation_failed" and final.error_message and final.video_url is None


async def test_moderated_output_maps_to_filtered(sora):
    provider, _, account = sora
    result = await submit(provider, account, prompt="a beach party nsfw-output")
    final, _ = await wait_for(provider, account, result.provider_job_id)
    assert final.status is ProviderStatus.FILTERED and final.error_code.startswith("content_")
    assert final.error_code == "content_output_moderated" and "moderation_blocked" in final.error_message


async def test_unknown_remote_status_is_a_bad_response(kit):
    server = JsonFakeServer()
    server.add_route(
        "GET",
        r"/v1/videos/(?P<id>[^/]+)",
        lambda req: json_response({"id": req.params["id"], "object": "video", "status": "paused"}),
    )
    provider = await kit.connect(server.start())
    try:
        account = ProviderAccount(
            id="a", provider_id=provider.provider_id, credentials={"api_key": "sk-" + "x" * 30}
        )
        with pytest.raises(ProviderError) as caught:
            await provider.check_status(account, "video_1")
        assert caught.value.error_code == "provider_bad_response" and caught.value.retryable
    finally:
        server.stop()


async def test_expired_assets_end_the_job_failed(kit):
    fake = kit.start_fake(latency=0, asset_ttl=0)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    job = (await submit(provider, account)).provider_job_id
    final = await provider.check_status(account, job)
    assert final.status is ProviderStatus.FAILED and final.error_code == "provider_result_expired"
    with pytest.raises(JobNotFoundError, match="expired"):
        await provider.download_content(account, job)


# -- errors -----------------------------------------------------------------------------------------
async def test_revoked_key_raises_authentication_error_without_leaking_it(sora, kit):
    provider, fake, _ = sora
    account = await kit.account(fake.invalid_raw_data())  # well-formed: extract accepts it
    secret = account.credentials["api_key"]
    with pytest.raises(AuthenticationError) as caught:
        await submit(provider, account)
    assert not caught.value.retryable and "invalid_api_key" in str(caught.value)
    for text in (str(caught.value), repr(caught.value), repr(account), str(account)):
        assert secret not in text and secret[-12:] not in text
    with pytest.raises(AuthenticationError):
        await provider.check_status(account, "video_0")


async def test_expired_session_token_raises_authentication_error(sora):
    provider, _, _ = sora
    token = jwt({"exp": int(time.time()) - 60, "email": "x@example.com"})
    account = ProviderAccount(
        id="s", provider_id=provider.provider_id, credentials={"kind": "session", "access_token": token}
    )
    with pytest.raises(AuthenticationError) as caught:
        await submit(provider, account)
    assert "token_expired" in str(caught.value) and token not in str(caught.value)


async def test_quota_exhausted_raises_quota_exceeded_and_failures_are_refunded(kit):
    fake = kit.start_fake(quota=50, latency=0)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    await submit(provider, account)  # sora-2, 4 s at 10 cents a second: 40
    with pytest.raises(QuotaExceededError) as caught:
        await submit(provider, account)
    assert caught.value.credits_needed == 40 and not caught.value.retryable
    assert fake.credits_remaining == 10

    refunding = kit.start_fake(quota=40, latency=0, fail_rate=1.0)
    provider = await kit.connect(refunding.url)
    job = (await submit(provider, account)).provider_job_id
    assert (await provider.check_status(account, job)).status is ProviderStatus.FAILED
    assert refunding.credits_remaining == 40  # OpenAI bills completed videos only


async def test_rate_limit_raises_rate_limit_error_with_retry_after(kit):
    fake = kit.start_fake(rate_limit_every=1, retry_after=2)
    provider = await kit.connect(fake.url)
    with pytest.raises(RateLimitError) as caught:
        await submit(provider, await kit.account(fake.valid_raw_data()))
    assert caught.value.retry_after == 2.0 and caught.value.retryable


async def test_concurrent_renders_over_the_limit_raise_concurrent_limit(kit):
    fake = kit.start_fake(max_concurrent=1, latency=5)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    await submit(provider, account)
    with pytest.raises(ConcurrentLimitError) as caught:
        await submit(provider, account)
    assert caught.value.retryable


async def test_moderation_at_submit_raises_content_filtered(sora):
    provider, fake, account = sora
    with pytest.raises(ContentFilteredError) as caught:
        await submit(provider, account, prompt="something Forbidden here")
    assert caught.value.error_code.startswith("content_") and not caught.value.retryable
    assert "sentinel_block" in str(caught.value) and not fake.videos


async def test_transient_server_error_is_retryable(kit):
    fake = kit.start_fake(fail_submits=1)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    with pytest.raises(ProviderUnavailableError) as caught:
        await submit(provider, account)
    assert caught.value.retryable
    assert (await submit(provider, account)).provider_job_id


async def test_unknown_job_raises_job_not_found(sora):
    provider, _, account = sora
    with pytest.raises(JobNotFoundError):
        await provider.check_status(account, "video_doesnotexist")


async def test_unreachable_api_raises_provider_unavailable(kit):
    fake = kit.start_fake()
    raw = fake.valid_raw_data()
    fake.stop()  # the port is free again: nobody answers
    provider = await kit.connect(fake.url)
    with pytest.raises(ProviderUnavailableError) as caught:
        await submit(provider, await kit.account(raw))
    assert caught.value.retryable and raw["api_key"] not in str(caught.value)


async def test_values_the_service_refuses_raise_invalid_parameters(sora):
    provider, _, account = sora
    mapped = {"model": "sora-2", "prompt": "x", "seconds": "5", "size": "720x1280"}  # bypasses map_parameters
    with pytest.raises(InvalidParametersError, match="seconds|'5'") as caught:
        await provider.execute(T2V, account, mapped)
    assert not caught.value.retryable


async def test_retry_after_is_read_from_every_header_openai_sends(provider, kit):
    errors = kit.module("errors")
    assert errors.retry_after(httpx.Headers({"retry-after-ms": "1500"})) == 1.5
    assert errors.retry_after(httpx.Headers({"retry-after": "3"})) == 3.0
    assert errors.retry_after(httpx.Headers({"x-ratelimit-reset-requests": "1m30s"})) == 90.0
    assert errors.retry_after(httpx.Headers({"x-ratelimit-reset-requests": "20ms"})) == 0.02
    assert errors.retry_after(httpx.Headers(), "Please try again in 7s.") == 7.0
    assert errors.retry_after(httpx.Headers({"x-ratelimit-reset-requests": "soon"})) is None


# -- spec, parameters, credits ----------------------------------------------------------------------
async def test_parameter_spec_is_present_and_sane_for_every_operation(provider):
    spec = provider.get_operation_parameter_spec()
    assert (
        set(spec) == {op.value for op in provider.supported_operations} == {"text_to_video", "image_to_video"}
    )
    allowed_types = {"string", "integer", "number", "boolean", "array", "object"}
    for op, form in spec.items():
        fields = {p["name"]: p for p in form["parameters"]}
        assert {"prompt", "model", "duration", "size"} <= set(fields)
        assert fields["prompt"]["required"] and all(p["type"] in allowed_types for p in fields.values())
        for field in fields.values():  # every default is a value the field accepts
            if "default" in field:
                assert validate_params({"parameters": [field]}, {field["name"]: field["default"]}) == [], (
                    op,
                    field,
                )
    t2v, i2v = spec["text_to_video"], spec["image_to_video"]
    assert (
        validate_params(t2v, {"prompt": "x", "model": "sora-2-pro", "duration": 12, "size": "1792x1024"})
        == []
    )
    assert validate_params(t2v, {"prompt": "x", "duration": 5}) != []
    assert validate_params(t2v, {"prompt": "x", "size": "1920x1080"}) != []
    assert validate_params(t2v, {"prompt": "x", "image_url": "a.png"}) != []  # t2v takes no image
    assert validate_params(i2v, {"prompt": "x"}) == ["parameter 'image_url' is required"]
    assert "default" not in {p["name"]: p for p in i2v["parameters"]}["size"]  # sized by the image


async def test_every_model_and_size_in_the_spec_maps_or_is_refused_and_has_a_price(provider, kit):
    pricing = kit.module("pricing")
    fields = {p["name"]: p for p in provider.get_operation_parameter_spec()["text_to_video"]["parameters"]}
    for model in fields["model"]["enum"]:
        for size in fields["size"]["enum"]:
            params = {"prompt": "x", "model": model, "size": size}
            if model == "sora-2" and size in ("1024x1792", "1792x1024"):
                with pytest.raises(InvalidParametersError, match="sora-2 renders"):
                    provider.map_parameters(T2V, params)
            else:
                assert provider.map_parameters(T2V, params)["size"] == size
                assert pricing.rate(model, size) in (10, 30, 50)


async def test_map_parameters_shapes(provider):
    assert provider.map_parameters(T2V, {"prompt": "a fox"}) == {
        "model": "sora-2",
        "prompt": "a fox",
        "seconds": "4",
        "size": "720x1280",
    }
    assert provider.map_parameters(
        T2V, {"prompt": "a fox", "duration": 12, "model": "sora-2-pro", "size": "1024x1792"}
    ) == {"model": "sora-2-pro", "prompt": "a fox", "seconds": "12", "size": "1024x1792"}
    assert provider.map_parameters(I2V, {"prompt": "go", "image_url": "https://x/y.png"}) == {
        "model": "sora-2",
        "prompt": "go",
        "seconds": "4",
        "size": None,
        "image_url": "https://x/y.png",
    }
    for bad in ({"prompt": ""}, {"prompt": "x", "duration": 5}, {"prompt": "x", "model": "sora-3"}):
        with pytest.raises(InvalidParametersError):
            provider.map_parameters(T2V, bad)
    with pytest.raises(UnsupportedOperationError):
        provider.map_parameters(OperationType.TEXT_TO_IMAGE, {"prompt": "x"})


async def test_estimate_credits_follows_the_price_per_second(provider):
    usage = provider.manifest.credit_types[0]
    assert usage == "usage"
    assert provider.estimate_credits(T2V, {"prompt": "x"}) == {usage: 40}  # sora-2: $0.10/s x 4 s
    assert provider.estimate_credits(T2V, {"model": "sora-2", "duration": 12, "size": "1280x720"}) == {
        usage: 120
    }
    assert provider.estimate_credits(T2V, {"model": "sora-2-pro", "duration": 8, "size": "720x1280"}) == {
        usage: 240
    }
    assert provider.estimate_credits(T2V, {"model": "sora-2-pro", "duration": 12, "size": "1792x1024"}) == {
        usage: 600
    }
    # image_to_video without a size takes the image's: reserve the model's dearest size
    assert provider.estimate_credits(I2V, {"model": "sora-2-pro", "duration": 4, "image_url": "a"}) == {
        usage: 200
    }
    assert provider.estimate_credits(I2V, {"model": "sora-2", "duration": 4, "image_url": "a"}) == {usage: 40}


async def test_actual_credits_use_what_was_rendered(provider):
    usage = provider.manifest.credit_types[0]
    generation = GenerationContext(id="g", provider_id=provider.provider_id, operation_type=I2V, params={})
    done = ProviderStatusResult(
        ProviderStatus.COMPLETED,
        width=720,
        height=1280,
        duration_sec=8.0,
        metadata={"model": "sora-2-pro-2025-10-06", "size": "720x1280"},
    )
    assert provider.compute_actual_credits(generation, done, {usage: 400}) == {usage: 240}
    unknown = ProviderStatusResult(ProviderStatus.COMPLETED, duration_sec=8.0, metadata={"model": "mystery"})
    assert provider.compute_actual_credits(generation, unknown, {usage: 400}) == {usage: 400}
    assert not provider.charges_filtered_jobs()


async def test_actual_credits_of_a_real_job_match_its_estimate(sora):
    provider, _, account = sora
    params = {"prompt": "x", "model": "sora-2-pro", "duration": 8, "size": "1792x1024"}
    estimate = provider.estimate_credits(T2V, params)
    final, _ = await wait_for(provider, account, (await submit(provider, account, **params)).provider_job_id)
    generation = GenerationContext(id="g", provider_id=provider.provider_id, operation_type=T2V, params={})
    assert provider.compute_actual_credits(generation, final, estimate) == estimate == {"usage": 400}


# -- accounts and secrets ---------------------------------------------------------------------------
async def test_extract_account_data_from_an_api_key(provider):
    key = "sk-proj-" + "a1" * 24
    data = await provider.extract_account_data(
        {"api_key": f"Bearer {key}", "organization": "org-1", "project": "proj_9"}, fallback_email="me@x.io"
    )
    assert data == {
        "email": "me@x.io",
        "credentials": {"kind": "api_key", "api_key": key, "organization": "org-1", "project": "proj_9"},
    }


async def test_extract_account_data_from_a_browser_session(provider, kit):
    token = jwt(
        {
            "exp": int(time.time()) + 3600,
            "sub": "auth0|u1",
            "https://api.openai.com/profile": {"email": "fox@example.com", "email_verified": True},
            "https://api.openai.com/auth": {"user_id": "user-abc"},
        }
    )
    raw = {
        "authorization": f"Bearer {token}",
        "cookies": [{"name": "oai-did", "value": "dev-42"}, {"name": "other", "value": "x"}],
    }
    data = await provider.extract_account_data(raw)
    assert data["email"] == "fox@example.com"
    assert data["credentials"] == {
        "kind": "session",
        "access_token": token,
        "device_id": "dev-42",
        "user_id": "user-abc",
        "expires_at": data["credentials"]["expires_at"],
    }
    # the fake accepts live session tokens as bearer tokens, like API keys
    fake = kit.start_fake(latency=0)
    provider = await kit.connect(fake.url)
    account = await kit.account(raw)
    job = (await submit(provider, account)).provider_job_id
    assert (await provider.check_status(account, job)).status is ProviderStatus.COMPLETED
    created = next(r for r in fake.requests if r.path == "/v1/videos")
    assert created.headers["oai-device-id"] == "dev-42"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({}, "no credential"),
        ({"cookies": {"__Secure-next-auth.session-token": "s3cret-cookie"}}, "no credential"),
        ({"api_key": "s3cret-not-a-key-at-all"}, "does not look like"),
        ({"api_key": "sk-short"}, "does not look like"),
        ({"bearer_token": "s3cret.opaque"}, "not a JWT"),
        ({"bearer_token": "eyJhbGciOiJub25lIn0.!!!s3cret!!!.sig"}, "cannot be decoded"),
        ({"bearer_token": jwt({"exp": 1_000_000_000})}, "expired"),
        ({"bearer_token": jwt({"email": "a@b.c"}), "cookies": "s3cret"}, "cookies"),
    ],
)
async def test_extract_account_data_refuses_broken_captures_without_echoing_them(provider, raw, why):
    with pytest.raises(ValueError, match=why) as caught:
        await provider.extract_account_data(raw)
    assert "s3cret" not in str(caught.value) and "eyJ" not in str(caught.value)
    with pytest.raises(ValueError, match="must be an object"):
        await provider.extract_account_data(["not", "a", "dict"])


async def test_secrets_stay_out_of_results_and_errors(sora):
    provider, fake, account = sora
    key = fake.valid_key
    result = await submit(provider, account)
    final, _ = await wait_for(provider, account, result.provider_job_id)
    for value in (result, final, account):
        assert key not in str(value) and key not in repr(value)
    fake.api_keys = {"sk-some-other-key-0000000000"}  # the key is revoked from now on
    with pytest.raises(AuthenticationError) as caught:
        await provider.check_status(account, result.provider_job_id)
    assert key not in str(caught.value) and "****" not in str(caught.value)  # not even the service's mask


# -- cancel (DELETE) --------------------------------------------------------------------------------
async def test_cancel_deletes_finished_videos_and_cannot_stop_a_render(kit):
    fake = kit.start_fake(latency=5)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    running = (await submit(provider, account)).provider_job_id
    assert await provider.cancel(account, running) is False  # the API deletes finished videos only
    assert fake.videos[running].state()[0] in ("queued", "in_progress")

    fake.latency = 0
    done = (await submit(provider, account)).provider_job_id
    assert await provider.cancel(account, done) is True
    assert [r.method for r in fake.requests if r.path == f"/v1/videos/{done}"] == ["DELETE"]
    with pytest.raises(JobNotFoundError):
        await provider.check_status(account, done)
    with pytest.raises(JobNotFoundError):
        await provider.cancel(account, done)


# -- the fake on its own ----------------------------------------------------------------------------
async def test_fake_lists_videos_and_answers_openai_shaped_errors(kit):
    provider, fake = await kit.connected(latency=10)  # the first video is still rendering at the end
    account = await kit.account(fake.valid_raw_data())
    ids = [(await submit(provider, account)).provider_job_id for _ in range(3)]
    auth = {"Authorization": f"Bearer {fake.valid_key}"}
    async with httpx.AsyncClient(base_url=fake.url, headers=auth) as client:
        page = (await client.get("/v1/videos", params={"limit": 2})).json()
        rest = (await client.get("/v1/videos", params={"limit": 2, "after": page["last_id"]})).json()
        unknown = await client.get("/v1/videos/video_nope")
        unauthenticated = await client.get("/v1/videos", headers={"Authorization": ""})
        not_ready = await client.get(f"/v1/videos/{ids[0]}/content")
    assert page["object"] == "list" and page["has_more"] and [v["id"] for v in page["data"]] == ids[::-1][:2]
    assert [v["id"] for v in rest["data"]] == ids[:1] and not rest["has_more"]
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "invalid_request_error"
    error = unauthenticated.json()["error"]
    assert unauthenticated.status_code == 401 and set(error) == {"message", "type", "param", "code"}
    assert not_ready.status_code == 400 and not_ready.json()["error"]["code"] == "video_not_ready"


async def test_fake_accepts_json_bodies_with_a_data_url_reference(sora):
    _, fake, _ = sora
    image = base64.b64encode(make_png(1280, 720, "json")).decode()
    auth = {"Authorization": f"Bearer {fake.valid_key}"}
    async with httpx.AsyncClient(base_url=fake.url, headers=auth) as client:
        body = {
            "prompt": "x",
            "size": "1280x720",
            "input_reference": {"image_url": f"data:image/png;base64,{image}"},
        }
        created = await client.post("/v1/videos", json=body)
        by_file = await client.post(
            "/v1/videos", json={"prompt": "x", "input_reference": {"file_id": "file_1"}}
        )
        int_seconds = await client.post("/v1/videos", json={"prompt": "x", "seconds": 4})
    video = created.json()
    assert created.status_code == 200 and video["object"] == "video" and video["status"] == "queued"
    assert (video["seconds"], video["size"], video["model"]) == ("4", "1280x720", "sora-2")
    assert fake.videos[video["id"]].reference == ("image/png", 1280, 720)
    assert by_file.status_code == 400 and by_file.json()["error"]["param"] == "input_reference"
    assert int_seconds.status_code == 400 and int_seconds.json()["error"]["code"] == "invalid_type"
