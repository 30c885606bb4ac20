"""The Remaker adapter against its fake web API, over real HTTP on loopback.

The provider is loaded the way services load it (`discover()` + `kit.provider`) and the fake
through `load_fake()`. Job states are driven with the fake's clock (`advance_clock`), not by sleeping.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pixsim_provider_sdk import (
    REFERENCE_PARAM,
    AuthenticationError,
    ConcurrentLimitError,
    ContentFilteredError,
    GenerationContext,
    InvalidParametersError,
    JobNotFoundError,
    OperationType,
    ProviderError,
    ProviderStatus,
    ProviderStatusResult,
    ProviderUnavailableError,
    ProviderUnreachableError,
    QuotaExceededError,
    RateLimitError,
    apply_defaults,
    image_info,
    validate_params,
)
from pixsim_provider_sdk.files import cleanup_temp_paths, resolve_source
from pixsim_provider_sdk.testing.harness import GATEWAY_ANSWERS, kit_fixture, run_prepared, wait_terminal
from pixsim_provider_sdk.testing.media import make_png, source_server

FOLDER = Path(__file__).resolve().parent
I2I, EDIT = OperationType.IMAGE_TO_IMAGE, OperationType.IMAGE_EDIT
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LATENCY = 0.2


def png_size(data: bytes) -> tuple[int, int]:
    kind, width, height = image_info(data)
    assert kind == "image/png"
    return width, height


kit = kit_fixture(FOLDER, latency=LATENCY)


@pytest.fixture
async def remaker(kit):
    """(provider, fake, account) with default knobs."""
    provider, fake = await kit.connected()
    return provider, fake, await kit.account(fake.valid_raw_data())


#: The input images: a 320x180 photo, a second photo and a mask of the photo's size.
IMAGES = {
    "photo": make_png(320, 180, "photo"),
    "other": make_png(64, 64, "other"),
    "mask": make_png(320, 180, "mask"),
}


@pytest.fixture
def sources():
    """A CDN on loopback that resolve_source may fetch from: `sources.add("a.png", data)` -> its URL."""
    with source_server() as server:
        yield server


@pytest.fixture
def images(sources):
    """The URLs of `IMAGES`, by the same keys."""
    return {name: sources.add(f"{name}.png", data) for name, data in IMAGES.items()}


async def submit(provider, account, op, params):
    """The dispatcher's path: map, prepare, execute, clean up."""
    return (await run_prepared(provider, account, op, params))[0]


async def download(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url)


# -- every operation, submit -> poll -> completed ----------------------------------------------------
async def test_image_to_image_runs_on_the_prompt_editor(remaker, images):
    provider, fake, account = remaker
    params = {
        "prompt": "make it autumn",
        "image_url": images["photo"],
        "aspect_ratio": "16:9",
        "image_resolution": "2K",
        "task_type": "sd",
    }
    result = await submit(provider, account, I2I, params)
    assert result.provider_job_id.startswith("pe:") and result.status is ProviderStatus.PENDING

    final, seen = await wait_terminal(provider, account, result.provider_job_id, I2I)
    assert final.status is ProviderStatus.COMPLETED and final.progress == 1.0
    assert final.video_url is None and final.metadata["provider_status"] == 100000
    progress = [s.progress for s in seen if s.progress is not None]
    assert progress == sorted(progress)
    image = await download(final.image_url)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert png_size(image.content) == (256, 144)  # 2K 16:9, shrunk by the fake's max_output_side

    form = fake.submissions[-1]
    assert form["mode"] == "prompt-editor"
    assert form["fields"] == {
        "prompt": "make it autumn",
        "task_type": "sd",
        "aspect_ratio": "16:9",
        "image_resolution": "2K",
    }
    (photo,) = form["files"]["image_files"]
    assert photo.data == IMAGES["photo"] and photo.content_type == "image/png"
    create = next(r for r in fake.requests if r.path.endswith("/create-job"))
    assert create.headers["authorization"] == account.credentials["token"]  # raw JWT, no "Bearer"
    assert create.headers["product-code"] == "067003" and create.headers["origin"] == "https://remaker.ai"


@pytest.mark.parametrize("op", [EDIT, I2I])
async def test_a_mask_runs_on_the_photo_editor(remaker, images, op):
    provider, fake, account = remaker
    params = {
        "prompt": "a red hat",
        "image_url": images["photo"],
        "mask_url": images["mask"],
        "task_type": "flux",
    }
    result = await submit(provider, account, op, params)
    assert not result.provider_job_id.startswith("pe:")

    final, _ = await wait_terminal(provider, account, result.provider_job_id, op)
    assert final.status is ProviderStatus.COMPLETED
    assert png_size((await download(final.image_url)).content) == (256, 144)  # the input's shape
    form = fake.submissions[-1]
    assert form["mode"] == "ai-photo-editor"
    assert form["fields"] == {"prompt": "a red hat", "task_type": "flux", "turnstile_token": ""}
    assert form["files"]["mask"][0].data == IMAGES["mask"]
    assert [f.data for f in form["files"]["image"]] == [IMAGES["photo"]]


async def test_multi_image_edit_and_resolution_clamped_per_model(remaker, images):
    provider, fake, account = remaker
    params = {
        "prompt": "put them together",
        "image_url": images["photo"],
        "extra_image_urls": [images["other"]],
        "task_type": "nano",
        "image_resolution": "4K",
        "aspect_ratio": "1:1",
    }
    final, _ = await wait_terminal(
        provider, account, (await submit(provider, account, I2I, params)).provider_job_id
    )
    assert final.status is ProviderStatus.COMPLETED
    form = fake.submissions[-1]
    assert len(form["files"]["image_files"]) == 2
    assert form["fields"]["image_resolution"] == "1K"  # nano renders 1K only; the fake refuses 4K for it


async def test_direct_execute_with_canonical_params_cleans_up_after_itself(
    remaker, images, tmp_path, monkeypatch
):
    provider, fake, account = remaker
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where resolve_source puts its copies
    result = await provider.execute(I2I, account, {"prompt": "sepia", "image_url": images["photo"]})
    assert result.provider_job_id.startswith("pe:") and fake.submissions[-1]["files"]["image_files"]
    assert list(scratch.iterdir()) == []


# -- every status code ------------------------------------------------------------------------------
async def test_each_job_state_maps_to_its_status(kit, images):
    fake = kit.start_fake(latency=100)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    prompt_job = (
        await submit(provider, account, I2I, {"prompt": "x", "image_url": images["photo"]})
    ).provider_job_id
    photo_job = (
        await submit(
            provider, account, EDIT, {"prompt": "x", "image_url": images["photo"], "mask_url": images["mask"]}
        )
    ).provider_job_id

    async def status(job_id):
        return await provider.check_status(account, job_id)

    queued = await status(prompt_job)  # 100002
    assert (queued.status, queued.progress, queued.metadata["provider_status"]) == (
        ProviderStatus.PENDING,
        0.0,
        100002,
    )
    fake.advance_clock(50)
    running = await status(prompt_job)  # 300013
    assert (running.status, running.metadata["provider_status"]) == (ProviderStatus.PROCESSING, 300013)
    assert 0.4 <= running.progress <= 0.6
    inpainting = await status(photo_job)  # 300006
    assert (inpainting.status, inpainting.metadata["provider_status"]) == (ProviderStatus.PROCESSING, 300006)
    fake.advance_clock(45)
    saving = await status(prompt_job)  # 100000 without output yet
    assert (saving.status, saving.metadata["provider_status"], saving.image_url) == (
        ProviderStatus.PROCESSING,
        100000,
        None,
    )
    fake.advance_clock(10)
    done = await status(prompt_job)
    assert done.status is ProviderStatus.COMPLETED and done.image_url


async def test_failed_and_filtered_jobs(kit, images):
    fake = kit.start_fake(latency=0, fail_rate=1.0)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    failed = await submit(provider, account, I2I, {"prompt": "x", "image_url": images["photo"]})
    status = await provider.check_status(account, failed.provider_job_id)  # 300007
    assert status.status is ProviderStatus.FAILED and status.error_code == "provider_generic"
    assert "300007" in status.error_message and status.metadata["provider_message_zh"]

    filtered = await submit(
        provider,
        account,
        EDIT,
        {"prompt": "nsfw-output please", "image_url": images["photo"], "mask_url": images["mask"]},
    )
    status = await provider.check_status(account, filtered.provider_job_id)  # 400000 during generation
    assert status.status is ProviderStatus.FILTERED and status.error_code == "content_output_rejected"
    assert status.error_message and not provider.charges_filtered_jobs()


async def test_unknown_jobs_raise_job_not_found(remaker, images, kit):
    provider, fake, account = remaker
    with pytest.raises(JobNotFoundError):
        await provider.check_status(account, "pe:00000000-0000-0000-0000-000000000000")
    photo_job = await submit(
        provider, account, EDIT, {"prompt": "x", "image_url": images["photo"], "mask_url": images["mask"]}
    )
    with pytest.raises(JobNotFoundError):  # each editor only knows its own jobs
        await provider.check_status(account, "pe:" + photo_job.provider_job_id)
    other = await kit.account({"token": fake.mint_token(user_id=2, email="u2@example.com")}, "acc-2")
    with pytest.raises(JobNotFoundError):  # nor another account's
        await provider.check_status(other, photo_job.provider_job_id)


# -- expiring result URLs ---------------------------------------------------------------------------
async def test_result_urls_expire_and_a_new_poll_renews_them(kit, images):
    fake = kit.start_fake(latency=0, url_ttl=600)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    job = await submit(provider, account, I2I, {"prompt": "x", "image_url": images["photo"]})
    first = await provider.check_status(account, job.provider_job_id)
    expires = int(parse_qs(urlsplit(first.image_url).query)["Expires"][0])
    assert first.metadata["result_expires_at"].startswith(time.strftime("%Y-%m-%d", time.gmtime(expires)))
    assert (await download(first.image_url)).status_code == 200

    fake.advance_clock(601)
    expired = await download(first.image_url)
    assert expired.status_code == 403 and b"Request has expired" in expired.content
    renewed = await provider.check_status(account, job.provider_job_id)
    assert renewed.image_url != first.image_url
    assert (await download(renewed.image_url)).content.startswith(PNG_SIGNATURE)
    tampered = re.sub(r"Signature=\w+", "Signature=0", renewed.image_url)
    assert (await download(tampered)).status_code == 403


# -- errors -----------------------------------------------------------------------------------------
async def test_rejected_session_raises_authentication_error_without_leaking_it(remaker, images, kit):
    provider, fake, _ = remaker
    bad = await kit.account(fake.invalid_raw_data(), "acc-bad")
    token = bad.credentials["token"]
    with pytest.raises(AuthenticationError) as caught:
        await submit(provider, bad, I2I, {"prompt": "x", "image_url": images["photo"]})
    assert not caught.value.retryable
    assert token not in str(caught.value) and token not in repr(caught.value) and token not in repr(bad)
    with pytest.raises(AuthenticationError):
        await provider.check_status(bad, "pe:whatever")
    with pytest.raises(AuthenticationError):
        await provider.get_credits(bad)


async def test_quota_is_taken_at_submit_and_given_back_on_failure(kit, images):
    fake = kit.start_fake(quota=8, latency=0)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    params = {"prompt": "x", "image_url": images["photo"]}  # sd at 2K: 6 credits
    assert provider.estimate_credits(
        I2I, apply_defaults(provider.get_operation_parameter_spec()["image_to_image"], params)
    ) == {"web": 6}
    await submit(provider, account, I2I, params)
    assert await provider.get_credits(account) == {"web": 2}
    with pytest.raises(QuotaExceededError) as caught:
        await submit(provider, account, I2I, params)
    assert caught.value.credits_needed == 6 and not caught.value.retryable
    fake.fail_rate = 1.0
    failed = await submit(provider, account, I2I, {**params, "task_type": "flux"})  # 2 credits, then refunded
    assert (await provider.check_status(account, failed.provider_job_id)).status is ProviderStatus.FAILED
    assert await provider.get_credits(account) == {"web": 2}


async def test_rate_limit_raises_with_retry_after(kit, images):
    fake = kit.start_fake(rate_limit_every=2, retry_after=3)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    await submit(provider, account, I2I, {"prompt": "x", "image_url": images["photo"]})
    with pytest.raises(RateLimitError) as caught:
        await submit(provider, account, I2I, {"prompt": "x", "image_url": images["photo"]})
    assert caught.value.retry_after == 3.0 and caught.value.retryable


async def test_moderation_at_submit_raises_content_filtered(kit, images):
    fake = kit.start_fake(quota=100)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    with pytest.raises(ContentFilteredError) as caught:
        await submit(provider, account, I2I, {"prompt": "something Forbidden", "image_url": images["photo"]})
    assert caught.value.error_code.startswith("content_") and not caught.value.retryable
    assert fake.jobs == {} and fake.credits_left() == 100


async def test_transient_server_errors_are_retryable(kit, images):
    fake = kit.start_fake(fail_submits=1)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    params = {"prompt": "x", "image_url": images["photo"]}
    with pytest.raises(ProviderUnavailableError) as caught:
        await submit(provider, account, I2I, params)
    assert caught.value.retryable and "503" in str(caught.value)
    assert (await submit(provider, account, I2I, params)).provider_job_id

    fake.stop()  # nobody answers any more
    with pytest.raises(ProviderUnavailableError):
        await provider.check_status(account, "pe:x")


async def test_concurrent_limit(kit, images):
    fake = kit.start_fake(max_concurrent=1, latency=30)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    params = {"prompt": "x", "image_url": images["photo"]}
    await submit(provider, account, I2I, params)
    with pytest.raises(ConcurrentLimitError) as caught:
        await submit(provider, account, I2I, params)
    assert caught.value.retryable


async def test_invalid_inputs_raise_invalid_parameters(remaker, images, sources):
    provider, _, account = remaker
    not_an_image = sources.add("notes.png", b"hello", "image/png")  # it says it is an image; it is not
    with pytest.raises(InvalidParametersError, match="PNG, JPG or WEBP"):  # refused by the remote (200002)
        await submit(provider, account, I2I, {"prompt": "x", "image_url": not_an_image})
    with pytest.raises(InvalidParametersError, match=r"image_url: the source is text/plain, not image"):
        await submit(provider, account, I2I, {"prompt": "x", "image_url": sources.add("notes.txt", b"hello")})
    with pytest.raises(InvalidParametersError, match=r"mask_url: the source answered HTTP 404"):
        await submit(
            provider,
            account,
            EDIT,
            {"prompt": "x", "image_url": images["photo"], "mask_url": sources.asset_url("missing.png")},
        )
    with pytest.raises(InvalidParametersError, match="mask"):
        provider.map_parameters(EDIT, {"prompt": "x", "image_url": images["photo"]})
    with pytest.raises(InvalidParametersError, match="sd"):
        provider.map_parameters(
            I2I, {"prompt": "x", "image_url": "a.png", "mask_url": "m.png", "task_type": "nano"}
        )
    with pytest.raises(InvalidParametersError, match="at most 1"):
        provider.map_parameters(
            I2I, {"prompt": "x", "image_url": "a.png", "extra_image_urls": ["b.png"], "task_type": "flux"}
        )
    with pytest.raises(InvalidParametersError, match="prompt"):
        provider.map_parameters(I2I, {"prompt": "  ", "image_url": "a.png"})


# -- spec, mapping, credits -------------------------------------------------------------------------
async def test_parameter_spec_is_present_and_sane(kit):
    provider = kit.provider
    spec = provider.get_operation_parameter_spec()
    assert set(spec) == {op.value for op in provider.supported_operations} == {"image_to_image", "image_edit"}
    for op_spec in spec.values():
        names = [p["name"] for p in op_spec["parameters"]]
        assert len(names) == len(set(names)) and {"prompt", "image_url", "task_type"} <= set(names)
        for p in op_spec["parameters"]:
            assert p["type"] in {"string", "integer", "number", "boolean", "array", "object"}
            if "enum" in p and "default" in p:
                assert p["default"] in p["enum"]
    i2i, edit = spec["image_to_image"], spec["image_edit"]
    assert (
        validate_params(
            i2i,
            {
                "prompt": "x",
                "image_url": "u",
                "task_type": "nano_pro",
                "image_resolution": "4K",
                "aspect_ratio": "21:9",
            },
        )
        == []
    )
    assert validate_params(i2i, {"prompt": "x" * 5001, "image_url": "u"}) != []
    assert validate_params(i2i, {"prompt": "x", "image_url": "u", "task_type": "dalle"}) != []
    assert validate_params(edit, {"prompt": "x", "image_url": "u"}) == ["parameter 'mask_url' is required"]
    assert (
        validate_params(edit, {"prompt": "x", "image_url": "u", "mask_url": "m", "task_type": "qwen"}) != []
    )
    for op in provider.supported_operations:  # defaults always map
        params = apply_defaults(spec[op.value], {"prompt": "x", "image_url": "u", "mask_url": "m"})
        assert provider.map_parameters(op, params)["mode"]


async def test_map_parameters_shapes(kit):
    provider = kit.provider
    assert provider.map_parameters(
        I2I,
        {
            "prompt": "p",
            "image_url": "a.png",
            "extra_image_urls": ["b.png"],
            "task_type": "nano",
            "image_resolution": "4K",
        },
    ) == {
        "mode": "prompt-editor",
        "prompt": "p",
        "task_type": "nano",
        "image_sources": ["a.png", "b.png"],
        "aspect_ratio": "match_input_image",
        "image_resolution": "1K",
    }
    assert provider.map_parameters(
        I2I,
        {
            "prompt": "p",
            "image_url": "a.png",
            "task_type": "sd5",
            "image_resolution": "3K",
            "aspect_ratio": "4:3",
        },
    ) == {
        "mode": "prompt-editor",
        "prompt": "p",
        "task_type": "sd5",
        "image_sources": ["a.png"],
        "aspect_ratio": "4:3",
        "image_resolution": "3K",
    }
    assert provider.map_parameters(I2I, {"prompt": "p", "image_url": "a.png", "image_resolution": "3K"}) == {
        "mode": "prompt-editor",
        "prompt": "p",
        "task_type": "sd",
        "image_sources": ["a.png"],
        "aspect_ratio": "match_input_image",
        "image_resolution": "2K",
    }  # sd has no 3K: the next lower
    assert provider.map_parameters(EDIT, {"prompt": "p", "image_url": "a.png", "mask_url": "m.png"}) == {
        "mode": "photo-editor",
        "prompt": "p",
        "task_type": "sd",
        "image_sources": ["a.png"],
        "mask_source": "m.png",
    }


async def test_estimate_and_actual_credits_follow_the_price_list(kit):
    provider = kit.provider
    est = provider.estimate_credits
    assert est(I2I, {"task_type": "sd", "image_resolution": "2K"}) == {"web": 6}
    assert est(I2I, {"task_type": "nano_pro", "image_resolution": "4K"}) == {"web": 20}
    assert est(I2I, {"task_type": "sd5", "image_resolution": "3K"}) == {"web": 12}
    assert est(I2I, {"task_type": "flux", "image_resolution": "4K"}) == {"web": 2}  # clamped to 1K
    assert est(I2I, {}) == {"web": 6}
    assert est(EDIT, {"task_type": "sd"}) == {"web": 4} == est(I2I, {"mask_url": "m.png"})
    assert est(EDIT, {"task_type": "flux", "image_resolution": "4K"}) == {"web": 2}

    done = ProviderStatusResult(ProviderStatus.COMPLETED, image_url="u")
    from_poller = GenerationContext(id="g", provider_id="remaker", operation_type=I2I, params={})
    assert provider.compute_actual_credits(from_poller, done, {"web": 20}) == {"web": 20}
    with_params = GenerationContext(
        id="g",
        provider_id="remaker",
        operation_type=I2I,
        params={"task_type": "nano", "image_resolution": "2K"},
    )
    assert provider.compute_actual_credits(with_params, done, {"web": 4}) == {"web": 4}


async def test_estimate_matches_what_the_remote_charges(kit, images):
    fake = kit.start_fake(quota=1000)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    spec = provider.get_operation_parameter_spec()
    cases = [
        (I2I, {"task_type": "nano_pro", "image_resolution": "4K"}),
        (I2I, {"task_type": "sd5", "image_resolution": "3K"}),
        (EDIT, {"task_type": "sd", "mask_url": images["mask"]}),
    ]
    for op, extra in cases:
        params = apply_defaults(spec[op.value], {"prompt": "x", "image_url": images["photo"], **extra})
        before = fake.credits_left()
        await submit(provider, account, op, params)
        assert {"web": before - fake.credits_left()} == provider.estimate_credits(op, params)


# -- accounts, secrets, files -----------------------------------------------------------------------
async def test_extract_account_data_from_captures(kit):
    provider, fake = kit.provider, kit.start_fake()
    raw = fake.valid_raw_data()
    data = await provider.extract_account_data(raw)
    assert data == {
        "email": "user@example.com",
        "credentials": {
            "token": raw["token"],
            "product_code": "067003",
            "product_serial": raw["product_serial"],
            "user_id": "1001",
        },
    }
    from_browser = {"localStorage": {"token": raw["token"]}, "cookies": [{"name": "x", "value": "y"}]}
    data = await provider.extract_account_data(from_browser, fallback_email="ignored@example.com")
    assert data["email"] == "user@example.com" and len(data["credentials"]["product_serial"]) == 32
    cookie = await provider.extract_account_data(
        {"cookies": {"token": f"Bearer {raw['token']}"}, "email": "A@B.C"}
    )
    assert cookie["credentials"]["token"] == raw["token"] and cookie["email"] == "a@b.c"
    no_email = fake.mint_token(email="")
    assert (await provider.extract_account_data({"token": no_email}, fallback_email="f@e.com"))[
        "email"
    ] == "f@e.com"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({}, "no session token"),
        ({"cookies": {"other": "x"}, "email": "a@b.c"}, "no session token"),
        ({"token": "s3cr3t-not-a-jwt"}, "not a JWT"),
        ({"token": "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6MX0.c2ln"}, "no e-mail"),
    ],
)
async def test_extract_account_data_rejects_broken_captures(kit, raw, problem):
    with pytest.raises(ValueError, match=problem) as caught:
        await kit.provider.extract_account_data(raw)
    assert "s3cr3t" not in str(caught.value) and "c2ln" not in str(caught.value)


async def test_secrets_stay_out_of_results_and_errors(remaker, images):
    provider, _, account = remaker
    token = account.credentials["token"]
    result = await submit(provider, account, I2I, {"prompt": "x", "image_url": images["photo"]})
    final, _ = await wait_terminal(provider, account, result.provider_job_id)
    for obj in (result, final, account):
        assert token not in repr(obj) and token not in str(obj)
    with pytest.raises(ContentFilteredError) as caught:
        await submit(provider, account, I2I, {"prompt": f"forbidden {token}", "image_url": images["photo"]})
    assert token not in str(caught.value) and token not in repr(caught.value)


async def test_prepared_files_are_listed_for_the_caller_to_delete(remaker, images):
    provider, _, account = remaker
    params = {"prompt": "x", "image_url": images["photo"], "mask_url": images["mask"]}
    generation = GenerationContext(
        id="g", provider_id=provider.provider_id, operation_type=EDIT, params=params
    )
    prepared = await provider.prepare_execution_params(
        generation, provider.map_parameters(EDIT, params), resolve_source
    )
    temps = prepared["_temp_paths"]
    assert sorted(temps) == sorted([*prepared["image_paths"], prepared["mask_path"]]) and len(temps) == 2
    assert Path(prepared["mask_path"]).read_bytes() == IMAGES["mask"]
    await provider.execute(EDIT, account, prepared)
    assert all(Path(p).exists() for p in temps)  # execute leaves them: cleaning up is the caller's job
    cleanup_temp_paths(temps)
    assert not any(Path(p).exists() for p in temps)

    made = []

    async def second_fails(source, user_id, suffix, **kw):
        if made:
            raise FileNotFoundError(source)
        path, temps = await resolve_source(source, user_id, suffix, **kw)
        made.extend(temps)
        return path, temps

    with pytest.raises(InvalidParametersError):
        await provider.prepare_execution_params(
            generation, provider.map_parameters(EDIT, params), second_fails
        )
    assert made and not any(Path(p).exists() for p in made)  # nothing leaks when preparation fails


async def test_upload_asset_credits_and_cancel(remaker, images, tmp_path):
    provider, _, account = remaker
    local = tmp_path / "photo.png"
    local.write_bytes(IMAGES["photo"])
    uploaded = await provider.upload_asset(account, str(local))
    assert uploaded["id"] and uploaded["expires_at"]
    assert (await download(uploaded["url"])).content == IMAGES["photo"]
    assert await provider.get_credits(account) == {"web": 999_999}  # no quota knob: unlimited
    job = await submit(provider, account, I2I, {"prompt": "x", "image_url": images["photo"]})
    assert await provider.cancel(account, job.provider_job_id) is False  # Remaker cannot cancel


# -- lost answers: what may have left a job, and why find_job cannot say --------------------------------
@pytest.mark.parametrize("fault", ["accept_then_stall", "accept_then_drop"])
async def test_an_answer_lost_after_acceptance_is_ambiguous(kit, images, fault):
    fake = kit.start_fake(stall_s=2.0, **{fault: 1})
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    provider.http_timeout = 0.5  # give up on the answer long before the fake sends it
    try:
        with pytest.raises(ProviderUnreachableError) as caught:
            await submit(provider, account, I2I, {"prompt": f"lost: {fault}", "image_url": images["photo"]})
    finally:
        provider.http_timeout = type(provider).http_timeout
    assert caught.value.maybe_accepted and getattr(fake, fault) == 0
    assert len(fake.jobs) == 1  # Remaker made it; we never heard its id
    with pytest.raises(NotImplementedError, match="no job listing"):  # and nothing can find it
        await provider.find_job(
            account,
            "gen-1",
            I2I,
            provider.map_parameters(I2I, {"prompt": f"lost: {fault}", "image_url": images["photo"]}),
            since=time.time() - 5,
        )


async def test_refusals_before_acceptance_are_not_ambiguous(kit, images):
    fake = kit.start_fake(fail_submits=1, rate_limit_every=2, max_concurrent=1, latency=30)
    provider = await kit.connect(fake.url)
    account = await kit.account(fake.valid_raw_data())
    params = {"prompt": "x", "image_url": images["photo"]}
    refusals = []
    for _ in range(4):  # 503 (nginx), accepted, 429, 200006 (a task already running)
        try:
            await submit(provider, account, I2I, params)
        except ProviderUnreachableError:
            raise
        except Exception as exc:  # noqa: BLE001 - every refusal is collected
            refusals.append(exc)
    assert [type(e) for e in refusals] == [ProviderUnavailableError, RateLimitError, ConcurrentLimitError]
    assert not any(e.maybe_accepted for e in refusals)
    fake.rate_limit_every = 0
    with pytest.raises(ContentFilteredError) as caught:
        await submit(provider, account, I2I, {**params, "prompt": "forbidden"})
    assert not caught.value.maybe_accepted
    fake.stop()  # a refused connection: the request never left
    with pytest.raises(ProviderUnreachableError) as caught:
        await submit(provider, account, I2I, params)
    assert not caught.value.maybe_accepted and not caught.value.maybe_received


@pytest.mark.parametrize(
    ("status", "body", "ambiguous"),
    [
        *GATEWAY_ANSWERS,
        (200, b'{"code": 100000, "message": {"en": "Success"}, "result": {}}', True),  # accepted, no job_id
        (200, b'{"code": 200001, "message": {"en": "Parameter error"}, "result": {}}', False),
        (200, b'{"code": 500000, "message": {"en": "Server error"}, "result": {}}', False),  # its answer
        (413, b"<html>413 Request Entity Too Large</html>", False),
    ],
)
async def test_create_job_answers_are_classified(remaker, images, status, body, ambiguous):
    provider, fake, account = remaker
    provider._client = httpx.AsyncClient(
        base_url=fake.url, transport=httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    )
    with pytest.raises(ProviderError) as caught:
        await submit(provider, account, I2I, {"prompt": "x", "image_url": images["photo"]})
    assert caught.value.maybe_accepted is ambiguous
    if body.startswith(b"<"):  # the same failure on a poll never is: a poll cannot make a job
        provider._client = httpx.AsyncClient(
            base_url=fake.url,
            transport=httpx.MockTransport(lambda request: httpx.Response(status, content=body)),
        )
        with pytest.raises(ProviderError) as caught:
            await provider.check_status(account, "pe:x")
        assert not caught.value.maybe_accepted


async def test_the_reference_is_never_sent(remaker, images, tmp_path):
    provider, fake, account = remaker
    mapped = provider.map_parameters(I2I, {"prompt": "quiet", "image_url": images["photo"]})
    generation = GenerationContext(
        id="gen-1",
        provider_id=provider.provider_id,
        operation_type=I2I,
        params={},
        user_id="user-1",
        account_id=account.id,
    )
    prepared = await provider.prepare_execution_params(generation, mapped, resolve_source)
    try:
        await provider.execute(I2I, account, {**prepared, REFERENCE_PARAM: "gen-secret-ref"})
    finally:
        cleanup_temp_paths(prepared["_temp_paths"])
    form = fake.submissions[-1]
    assert "gen-secret-ref" not in str(form["fields"])
    create = next(r for r in fake.requests if r.path.endswith("/create-job"))
    assert "gen-secret-ref" not in str(create.headers)
