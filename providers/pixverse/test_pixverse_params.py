"""The parameter spec, map_parameters, credits (estimate, actual, and what the fake deducts) and
account captures. Fixtures: conftest.py."""

from __future__ import annotations

import time

import pytest
from pixsim_provider_sdk import (
    GenerationContext,
    InvalidParametersError,
    OperationType,
    ProviderStatus,
    ProviderStatusResult,
    UnsupportedOperationError,
    validate_params,
)

O = OperationType
T2V, I2V, EXTEND, TRANSITION = O.TEXT_TO_VIDEO, O.IMAGE_TO_VIDEO, O.VIDEO_EXTEND, O.VIDEO_TRANSITION
FUSION, T2I, I2I = O.FUSION, O.TEXT_TO_IMAGE, O.IMAGE_TO_IMAGE
URL_A, URL_B = "https://x.example/a.png", "https://x.example/b.png"
MINIMAL = {
    T2V: {"prompt": "p"},
    I2V: {"prompt": "p", "image_url": URL_A},
    EXTEND: {"prompt": "p", "original_video_id": "380000000000001"},
    TRANSITION: {"prompt": "p", "image_urls": [URL_A, URL_B]},
    FUSION: {"prompt": "p", "image_urls": [URL_A]},
    T2I: {"prompt": "p"},
    I2I: {"prompt": "p", "image_urls": [URL_A]},
}
TYPES = {"string", "integer", "number", "boolean", "array", "object"}


def test_parameter_spec_is_complete_and_sane(provider):
    spec = provider.get_operation_parameter_spec()
    assert set(spec) == {op.value for op in provider.supported_operations} == {op.value for op in MINIMAL}
    for op in provider.supported_operations:
        fields = spec[op.value]["parameters"]
        names = [f["name"] for f in fields]
        assert len(names) == len(set(names)) and "prompt" in names
        for field in fields:
            assert field["type"] in TYPES and isinstance(field["required"], bool) and field["description"]
            if "default" in field:  # a default must pass its own rules
                assert validate_params({"parameters": [field]}, {field["name"]: field["default"]}) == []
        assert validate_params(spec[op.value], MINIMAL[op]) == []
        assert provider.map_parameters(op, MINIMAL[op])["operation"] == op.value
    t2v = spec["text_to_video"]
    assert validate_params(t2v, {"prompt": "x", "duration": 16}) != []
    assert validate_params(t2v, {"prompt": "x", "quality": "4k"}) != []
    assert validate_params(t2v, {"prompt": "x" * 5001}) != []
    assert validate_params(t2v, {"prompt": "x", "outcome": "fail"}) != []  # no simulator knobs here
    assert validate_params(spec["image_to_video"], {"prompt": "x"}) == ["parameter 'image_url' is required"]


def test_map_parameters_shapes(provider):
    assert provider.map_parameters(T2V, {"prompt": " a fox ", "duration": 15, "seed": 7}) == {
        "operation": "text_to_video", "api_method": "webapi", "prompt": "a fox", "credit_change": 40,
        "options": {"model": "v5", "quality": "360p", "duration": 10, "seed": 7, "aspect_ratio": "16:9"},
    }  # fmt: skip

    def mapped(op, **params):
        return provider.map_parameters(op, params)

    assert mapped(T2V, prompt="x", model="v6", duration=15)["options"]["duration"] == 15
    i2v = mapped(I2V, prompt="x", image_url="/tmp/a.png", aspect_ratio="1:1")
    assert i2v["sources"] == ["/tmp/a.png"] and "aspect_ratio" not in i2v["options"]
    transition = mapped(TRANSITION, prompt="go", image_urls=["a", "b", "c"], durations=[0, 12])
    assert transition["prompts"] == ["go", "go"] and transition["durations"] == [1, 8]
    assert mapped(FUSION, prompt="image1 hugs #2", image_urls=["a", "b"])["prompt"] == "@1 hugs @2"
    assert mapped(EXTEND, prompt="x", original_video_id="openapi:42")["original_video_id"] == 42
    image = mapped(T2I, prompt="x", model="gemini-3.0", quality="4k")["options"]
    assert image == {"model": "gemini-3.0", "quality": "2160p", "aspect_ratio": "16:9", "seed": 0}


@pytest.mark.parametrize(
    ("op", "params", "reason"),
    [
        (T2V, {"prompt": "x", "model": "grok-imagine", "quality": "1080p"}, "offers"),
        (I2V, {"prompt": "x", "image_url": "a", "model": "v5.5", "camera_movement": "zoom_in"}, "camera"),
        (T2V, {"prompt": "x", "motion_mode": "fast"}, "OpenAPI only"),
        (T2V, {"prompt": "x", "multi_shot": True}, "multi_shot"),
        (T2V, {"prompt": "   "}, "needs a prompt"),
        (TRANSITION, {"prompts": ["a", "b"], "image_urls": ["a", "b"]}, "1 non-empty prompts"),
        (TRANSITION, {"prompt": "x", "image_urls": ["a"]}, "2 to 7"),
        (TRANSITION, {"prompt": "x", "image_urls": ["a", "b"], "api_method": "openapi"}, "WebAPI only"),
        (EXTEND, {"prompt": "x"}, "video_url or original_video_id"),
        (EXTEND, {"prompt": "x", "original_video_id": "abc"}, "digits"),
        (
            EXTEND,
            {"prompt": "x", "video_url": "https://media.pixverse.ai/a.mp4", "api_method": "openapi"},
            "by id",
        ),
        (FUSION, {"prompt": "x", "image_urls": ["a"] * 4}, "1 to 3"),
        (I2I, {"prompt": "x", "image_urls": ["a"] * 4}, "1 to 3"),
        (T2I, {"prompt": "x", "model": "qwen-image", "quality": "4k"}, "offers"),
    ],
)
def test_map_parameters_refuses_what_pixverse_refuses(provider, op, params, reason):
    with pytest.raises(InvalidParametersError, match=reason):
        provider.map_parameters(op, params)


def test_operations_pixverse_lacks_are_refused(provider):
    for op in (O.VIDEO_MODIFY, O.IMAGE_EDIT, O.IMAGE_COMPOSITE):
        with pytest.raises(UnsupportedOperationError):
            provider.map_parameters(op, {"prompt": "x"})


# -- credits ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("op", "params", "expected"),
    [
        (T2V, {"quality": "720p", "duration": 8}, {"web": 64}),
        (T2V, {"quality": "1080p", "api_method": "openapi"}, {"openapi": 120}),
        (T2V, {"model": "v5.5", "duration": 6, "multi_shot": True}, {"web": 44}),
        (T2V, {"model": "v5.5", "audio": True}, {"web": 30}),
        (T2V, {"model": "v6", "quality": "540p", "audio": True}, {"web": 38}),
        (T2V, {"model": "grok-imagine", "quality": "720p"}, {"web": 75}),
        (EXTEND, {"original_video_id": "1", "quality": "1080p", "duration": 5}, {"web": 80}),
        (TRANSITION, {"image_urls": ["a", "b", "c"], "quality": "540p"}, {"web": 50}),
        (T2I, {}, {"web": 5}),
        (I2I, {"image_urls": ["a"], "model": "gemini-3.0", "quality": "4k"}, {"web": 90}),
        (T2V, {"model": "grok-imagine", "quality": "480p", "api_method": "openapi"}, None),  # not sold there
        (T2V, {"quality": "1080p", "model": "grok-imagine"}, None),  # invalid: execute says why
    ],
)
def test_estimates_follow_the_price_list(provider, op, params, expected):
    assert provider.estimate_credits(op, {"prompt": "x", **params}) == expected


def test_price_tables(internal):
    pricing = internal("pricing")
    assert [pricing.WEB_PER_SECOND[q] * 5 for q in ("360p", "540p", "720p", "1080p")] == [20, 30, 40, 80]
    assert pricing.image_cost("qwen-image", "1080P") == 10 and pricing.image_cost("gemini-3.0", "2160p") == 90
    assert pricing.image_cost("unknown-model", "720p") is None


def test_actual_credits_use_the_rendered_length(provider):
    video = GenerationContext(id="g", provider_id="pixverse", operation_type=T2V, params={})
    meta = {"model": "v5", "quality": "720p", "multi_shot": 0, "audio": 0}
    done = ProviderStatusResult(ProviderStatus.COMPLETED, duration_sec=4.0, metadata=meta)
    assert provider.compute_actual_credits(video, done, {"web": 40}) == {"web": 32}
    without_length = ProviderStatusResult(ProviderStatus.COMPLETED, metadata=meta)
    assert provider.compute_actual_credits(video, without_length, {"web": 40}) == {"web": 40}
    without_model = ProviderStatusResult(ProviderStatus.COMPLETED, duration_sec=4.0)
    assert provider.compute_actual_credits(video, without_model, {"openapi": 60}) == {"openapi": 60}
    image = GenerationContext(id="g", provider_id="pixverse", operation_type=T2I, params={})
    assert provider.compute_actual_credits(image, done, {"web": 5}) == {"web": 5}


async def test_estimates_match_what_pixverse_deducts(harness):
    pv = await harness(quota=10_000, latency=30)
    for op, params in [
        (T2V, {"model": "v6", "quality": "720p", "audio": True, "duration": 7}),
        (T2V, {"model": "v5.5", "multi_shot": True, "duration": 8}),
        (T2I, {"model": "gemini-3.1-flash", "quality": "2k"}),
        (T2V, {"quality": "540p", "api_method": "openapi"}),
    ]:
        ((credit_type, expected),) = pv.provider.estimate_credits(op, {"prompt": "x", **params}).items()
        before = pv.fake.balance(credit_type)
        await pv.submit(op, **params)
        assert before - pv.fake.balance(credit_type) == expected, params


async def test_actual_credits_of_a_finished_job(pv):
    estimate = pv.provider.estimate_credits(T2V, {"prompt": "x", "quality": "720p", "duration": 3})
    result = await pv.submit(quality="720p", duration=3)
    final, _ = await pv.wait(result.provider_job_id)
    generation = GenerationContext(id="g", provider_id="pixverse", operation_type=T2V, params={})
    assert pv.provider.compute_actual_credits(generation, final, estimate) == estimate == {"web": 24}
    # Priced from the finished record itself (model, quality, length), not from the estimate:
    assert pv.provider.compute_actual_credits(generation, final, {"web": 999}) == {"web": 24}


# -- accounts -----------------------------------------------------------------------------------------
async def test_extract_account_data_accepts_the_capture_shapes(provider, fake_factory):
    fake = fake_factory()  # not started: only its captures are needed
    raw = fake.valid_raw_data()
    data = await provider.extract_account_data(raw)
    assert data["email"] == "creator@pixverse.test" and data["account_id"] == 100000001
    cookies = raw["cookies"]
    assert data["credentials"] == {
        "jwt_token": cookies["_ai_token"], "openapi_key": raw["openapi_key"],
        "trace_id": cookies["_pxs7_trace_id"], "anonymous_id": cookies["_pxs7_anonymous_id"],
    }  # fmt: skip
    as_list = [{"name": k, "value": v, "domain": ".pixverse.ai"} for k, v in cookies.items()]
    listed = await provider.extract_account_data({"cookies": as_list})
    assert listed["credentials"]["jwt_token"] == cookies["_ai_token"]
    token = fake.mint_token(account_id=7, email="seven@example.com")
    other = await provider.extract_account_data({"jwt_token": token, "session_ids": {"ai_trace_id": "t-1"}})
    assert other["email"] == "seven@example.com" and other["credentials"]["trace_id"] == "t-1"
    key_only = await provider.extract_account_data({"openapi_key": "sk-abc"}, fallback_email="k@example.com")
    assert key_only["email"] == "k@example.com" and key_only["credentials"] == {"openapi_key": "sk-abc"}
    assert (await provider.extract_account_data(fake.invalid_raw_data()))["credentials"]["jwt_token"]


async def test_extract_account_data_rejects_broken_captures_without_echoing_them(provider, fake_factory):
    expired = fake_factory().mint_token(exp=time.time() - 60)
    secrets = ("secret.bm90IGpzb24.sig123", "secret-token-without-dots", expired, "sk-secret-999")
    for raw, reason in [
        ({}, "no credentials"),
        ({"cookies": {"other": "x"}}, "no credentials"),
        ("nope", "must be an object"),
        ({"jwt_token": secrets[0]}, "payload"),
        ({"jwt_token": secrets[1]}, "not a JWT"),
        ({"jwt_token": expired}, "expired"),
        ({"openapi_key": secrets[3]}, "no email"),
        ({"jwt_token": 42}, "must be strings"),
    ]:
        with pytest.raises(ValueError, match=reason) as caught:
            await provider.extract_account_data(raw)
        assert not any(secret in str(caught.value) for secret in secrets)
