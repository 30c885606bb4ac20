"""The submit request per operation and API: (path, JSON body), from the mapped params and the
resolved inputs (`sources.resolve_inputs`). Shapes follow Pixverse's WebAPI and OpenAPI v2."""

from __future__ import annotations

from typing import Any

from pixsim_provider_sdk import InvalidParametersError, OperationType

from .sources import is_pixverse_media, media_path

WEB_PATHS = {
    OperationType.TEXT_TO_VIDEO: "/creative_platform/video/t2v",
    OperationType.IMAGE_TO_VIDEO: "/creative_platform/video/i2v",
    OperationType.VIDEO_EXTEND: "/creative_platform/video/extend",
    OperationType.VIDEO_TRANSITION: "/creative_platform/video/frames",
    OperationType.FUSION: "/creative_platform/video/fusion",
    OperationType.TEXT_TO_IMAGE: "/creative_platform/image/i2i",  # t2i is i2i without images
    OperationType.IMAGE_TO_IMAGE: "/creative_platform/image/i2i",
}
OPENAPI_PATHS = {
    OperationType.TEXT_TO_VIDEO: "/openapi/v2/video/text/generate",
    OperationType.IMAGE_TO_VIDEO: "/openapi/v2/video/img/generate",
    OperationType.VIDEO_EXTEND: "/openapi/v2/video/extend",
    OperationType.FUSION: "/openapi/v2/video/fusion/generate",
}


def build(op: OperationType, mapped: dict[str, Any], inputs: list[dict[str, Any]], base_url: str):
    """(path, body) for submitting `op`."""
    if mapped["api_method"] == "openapi":
        return OPENAPI_PATHS[op], _openapi_body(op, mapped, inputs)
    return WEB_PATHS[op], _web_body(op, mapped, inputs, base_url)


def _web_body(op: OperationType, mapped: dict[str, Any], inputs: list[dict[str, Any]], base_url: str) -> dict:
    options = dict(mapped["options"])
    prompt = mapped.get("prompt")
    urls = [i["url"] for i in inputs]
    paths = [i["path"] for i in inputs]
    if op in (OperationType.TEXT_TO_IMAGE, OperationType.IMAGE_TO_IMAGE):
        body = {
            "create_count": 1,
            "prompt": prompt,
            **options,
            "customer_img_paths": paths,
            "customer_img_urls": urls,
        }
        if mapped.get("credit_change") is not None:
            body["credit_change"] = mapped["credit_change"]
        return body
    if op in (OperationType.TEXT_TO_VIDEO, OperationType.IMAGE_TO_VIDEO):
        body = {**options, "prompt": prompt, "create_count": 1, "lip_sync_tts_speaker_id": "Auto"}
        if op is OperationType.IMAGE_TO_VIDEO:
            body.pop("aspect_ratio", None)  # i2v follows the image's shape
            body.update(customer_img_url=urls[0], customer_img_path=paths[0])
        return body
    if op is OperationType.VIDEO_EXTEND:
        body = {**options, "prompt": prompt, "platform": "web", "create_count": 1}
        if mapped.get("credit_change") is not None:
            body["credit_change"] = mapped["credit_change"]
        if mapped.get("original_video_id"):
            body["original_video_id"] = mapped["original_video_id"]
        video_url = mapped.get("video_url")
        if video_url:
            if not is_pixverse_media(video_url, base_url):
                raise InvalidParametersError(
                    "pixverse: video_url must be a Pixverse media URL (or pass original_video_id)"
                )
            body.update(customer_video_url=video_url, customer_video_path=media_path(video_url))
        return body
    if op is OperationType.VIDEO_TRANSITION:
        durations = mapped["durations"]
        body = {
            **options,
            "customer_img_urls": urls,
            "customer_img_paths": paths,
            "prompts": mapped["prompts"],
            "duration": durations[0],
            "durations": durations,
            "off_peak": 0,
            "preview_mode": 0,
            "create_count": 1,
        }
        if len(mapped["prompts"]) == 1:
            body["prompt"] = mapped["prompts"][0]
        return body
    if op is OperationType.FUSION:
        return {
            **options,
            "create_count": 1,
            "original_prompt": prompt,
            "prompt": prompt,
            "customer_img_paths": paths,
            "customer_img_urls": urls,
        }
    raise InvalidParametersError(f"pixverse: no WebAPI request for {op.value}")


def _openapi_body(op: OperationType, mapped: dict[str, Any], inputs: list[dict[str, Any]]) -> dict:
    options = dict(mapped["options"])
    body = {**options, "prompt": mapped.get("prompt")}
    if op is OperationType.IMAGE_TO_VIDEO:
        body.pop("aspect_ratio", None)
        body["img_id"] = inputs[0]["img_id"]
    elif op is OperationType.VIDEO_EXTEND:
        body["video_id"] = mapped["original_video_id"]
    elif op is OperationType.FUSION:
        body["image_references"] = [
            {"img_id": i["img_id"], "ref_name": str(n)} for n, i in enumerate(inputs, 1)
        ]
    return body
