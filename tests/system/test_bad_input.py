"""Bad HTTP input gets a 4xx whose message says what is wrong."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.system


@pytest.mark.parametrize(
    ("body", "status", "code", "mentions"),
    [
        (
            {"provider_id": "nope", "operation_type": "text_to_video", "params": {"prompt": "x"}},
            400,
            "provider_not_found",
            "nope",
        ),
        (
            {"provider_id": "sim", "operation_type": "video_extend", "params": {"prompt": "x"}},
            400,
            "unsupported_operation",
            "video_extend",
        ),
        (
            {
                "provider_id": "sim",
                "operation_type": "text_to_video",
                "params": {"prompt": "x", "duration": 999},
            },
            422,
            "param_invalid",
            "duration",
        ),
        (
            {"provider_id": "sim", "operation_type": "text_to_video", "params": {}},
            422,
            "param_invalid",
            "prompt",
        ),
        (
            {
                "provider_id": "sim",
                "operation_type": "text_to_video",
                "params": {"prompt": "x", "colour": "red"},
            },
            422,
            "param_invalid",
            "colour",
        ),
        ({"operation_type": "text_to_video"}, 422, "invalid_request", "provider_id"),
    ],
)
async def test_bad_generation_requests(pipeline, body, status, code, mentions):
    resp = await pipeline.api.post("/api/v1/generations", json=body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code and mentions in error["message"]


async def test_malformed_json(pipeline):
    resp = await pipeline.api.post(
        "/api/v1/generations", content=b'{"provider_id": "sim",', headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "malformed_json"


async def test_unknown_generation_and_provider(pipeline):
    assert (await pipeline.api.get("/api/v1/generations/nope")).json()["error"][
        "code"
    ] == "generation_not_found"
    assert (await pipeline.api.get("/api/v1/providers/nope")).status_code == 404


async def test_url_detection_finds_every_provider_from_its_domains(pipeline):
    providers = (await pipeline.api.get("/api/v1/providers")).json()["items"]
    assert {p["id"] for p in providers} >= {"sim", "pixverse", "sora", "remaker"}
    for provider in providers:
        for domain in provider["domains"]:
            resp = await pipeline.api.get(
                "/api/v1/providers/detect", params={"url": f"https://{domain}/some/page"}
            )
            assert resp.status_code == 200 and resp.json()["id"] == provider["id"], (domain, resp.text)
    unknown = await pipeline.api.get("/api/v1/providers/detect", params={"url": "https://example.org/x"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "no_provider_for_url"
