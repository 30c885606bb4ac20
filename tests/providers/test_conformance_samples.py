"""How the conformance suite builds inputs from a parameter spec alone (no provider-specific code)."""

from __future__ import annotations

from pixsim_provider_sdk import OperationType, validate_params
from pixsim_provider_sdk.testing.checks import PROMPT_TEXT, frame_size, media_kind, sample_params
from pixsim_provider_sdk.testing.media import make_png, media_problem


def url(kind: str) -> str:
    return f"http://127.0.0.1:9/{kind}"


def test_required_parameters_get_valid_values_and_optional_ones_stay_out():
    spec = {
        "parameters": [
            {"name": "prompt", "type": "string", "required": True, "max_length": 5},
            {"name": "quality", "type": "string", "enum": ["720p", "1080p"], "required": True},
            {"name": "steps", "type": "integer", "min": 3.5, "max": 9, "required": True},
            {"name": "seed", "type": "integer"},
        ]
    }
    params = sample_params(spec, url, OperationType.TEXT_TO_IMAGE)
    assert params == {"prompt": PROMPT_TEXT[:5], "quality": "720p", "steps": 4}
    assert validate_params(spec, params) == []


def test_media_parameters_get_urls_lists_get_two_and_either_or_inputs_get_one():
    fusion = {
        "parameters": [
            {"name": "image_urls", "type": "array", "required": True},
            {"name": "prompt", "type": "string"},
        ]
    }
    assert sample_params(fusion, url, OperationType.FUSION) == {
        "image_urls": [url("image")] * 2,
        "prompt": PROMPT_TEXT,
    }
    extend = {
        "parameters": [{"name": "video_url", "type": "string"}, {"name": "original_id", "type": "string"}]
    }
    assert sample_params(extend, url, OperationType.VIDEO_EXTEND) == {"video_url": url("video")}
    assert sample_params(extend, url, OperationType.TEXT_TO_VIDEO) == {}  # text operations take no media
    assert media_kind({"name": "mask", "media": "image"}) == "image" and media_kind({"name": "model"}) is None


def test_frame_size_comes_from_the_first_size_the_spec_offers():
    spec = {
        "parameters": [{"name": "model", "enum": ["a"]}, {"name": "size", "enum": ["1280x720", "720x1280"]}]
    }
    assert frame_size(spec) == (1280, 720) and frame_size({"parameters": []}) is None


def test_media_problem_checks_type_family_and_magic_bytes():
    png = make_png(4, 3)
    assert media_problem("image/png", png) is None
    assert "not video" in media_problem("image/png", png, "video")
    assert "not image/png" in media_problem("image/png", b"GIF89a....")
    assert "empty" in media_problem("video/mp4", b"")
    assert media_problem("application/json", b"{}") is not None
