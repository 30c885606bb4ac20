"""Canonical params -> the mapped shape `execute` sends (pure; no I/O).

Mapped shape (JSON-safe, so it can be stored with the submission):

    {"operation": "image_to_video", "api_method": "webapi" | "openapi",
     "prompt": str | None, "options": {Pixverse option fields, nulls dropped},
     "sources": [image sources] (i2v, transition, fusion, i2i),
     "prompts": [...], "durations": [...] (transition),
     "video_url" / "original_video_id" (extend), "credit_change": int | None}

`prepare_execution_params` later adds `local_sources` ({index: local file}) and `_temp_paths`.
"""

from __future__ import annotations

import re
from typing import Any

from pixsim_provider_sdk import InvalidParametersError, OperationType

from . import pricing
from .catalog import (
    DEFAULT_IMAGE_MODEL,
    DEFAULT_IMAGE_QUALITY,
    DEFAULT_VIDEO_MODEL,
    EXTEND_MODELS,
    FUSION_IMAGES,
    FUSION_MODELS,
    IMAGE_MODELS,
    IMAGE_OPERATIONS,
    IMAGE_QUALITY_ALIASES,
    OPENAPI_OPERATIONS,
    TRANSITION_IMAGES,
    TRANSITION_MODELS,
    TRANSITION_SEGMENT_SECONDS,
    VIDEO_MODELS,
)

OPENAPI_JOB_PREFIX = "openapi:"
_REF_TOKEN = re.compile(r"@\d+\b")
# "@image2", "#2" and "image2" all name the second reference; Pixverse wants "@2".
_REF_ALIASES = re.compile(r"(?:@image|#|\bimage)(\d+)\b", re.IGNORECASE)


def _invalid(message: str) -> InvalidParametersError:
    return InvalidParametersError(f"pixverse: {message}")


def map_parameters(op: OperationType, params: dict[str, Any]) -> dict[str, Any]:
    """The mapped payload for `op`; raises InvalidParametersError for combinations Pixverse refuses."""
    api = params.get("api_method") or "webapi"
    if api == "openapi" and op not in OPENAPI_OPERATIONS:
        raise _invalid(f"{op.value} exists on the WebAPI only (api_method=webapi)")
    mapped: dict[str, Any] = {
        "operation": op.value,
        "api_method": api,
        "prompt": _prompt(params.get("prompt")),
    }
    if op in IMAGE_OPERATIONS:
        _map_image(op, params, mapped)
    else:
        _map_video(op, params, mapped)
    mapped["credit_change"] = credits_for(op, mapped)
    return mapped


def _prompt(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _map_video(op: OperationType, params: dict[str, Any], mapped: dict[str, Any]) -> None:
    allowed = {
        OperationType.VIDEO_EXTEND: EXTEND_MODELS,
        OperationType.FUSION: FUSION_MODELS,
        OperationType.VIDEO_TRANSITION: TRANSITION_MODELS,
    }.get(op, tuple(VIDEO_MODELS))
    model_id = params.get("model") or (DEFAULT_VIDEO_MODEL if DEFAULT_VIDEO_MODEL in allowed else allowed[0])
    if model_id not in allowed:
        raise _invalid(f"model {model_id!r} cannot run {op.value} (choose one of {', '.join(allowed)})")
    model = VIDEO_MODELS[model_id]
    quality = params.get("quality") or model.qualities[0]
    if quality not in model.qualities:
        raise _invalid(f"model {model_id} offers {', '.join(model.qualities)}, not {quality}")
    options: dict[str, Any] = {"model": model_id, "quality": quality}
    if op is not OperationType.VIDEO_TRANSITION:
        # Pixverse rejects durations above the model's maximum; clamp like its own UI does.
        options["duration"] = max(1, min(int(params.get("duration") or 5), model.max_duration))
    if params.get("seed") is not None:
        options["seed"] = int(params["seed"])
    if op in (OperationType.TEXT_TO_VIDEO, OperationType.FUSION) and params.get("aspect_ratio"):
        options["aspect_ratio"] = params["aspect_ratio"]
    if op is OperationType.TEXT_TO_VIDEO:
        options.setdefault("aspect_ratio", "16:9")  # the WebAPI's t2v requires one
    for name in ("negative_prompt", "style", "template_id", "motion_mode", "camera_movement"):
        if params.get(name) not in (None, "", "none"):
            options[name] = params[name]
    if options.get("camera_movement") and not model.camera_movement:
        raise _invalid(f"model {model_id} has no camera_movement (use v5 or v5-fast)")
    if options.get("motion_mode") and mapped["api_method"] != "openapi":
        raise _invalid("motion_mode exists on the OpenAPI only (api_method=openapi)")
    for flag, supported in (("multi_shot", model.multi_shot), ("audio", model.audio)):
        if params.get(flag):
            if not supported:
                raise _invalid(f"model {model_id} has no {flag}")
            options[flag] = 1
    if params.get("off_peak"):
        options["off_peak"] = 1
    mapped["options"] = options
    if op is OperationType.IMAGE_TO_VIDEO:
        mapped["sources"] = [_source(params.get("image_url"), "image_url")]
    elif op is OperationType.VIDEO_EXTEND:
        _map_extend(params, mapped)
    elif op is OperationType.VIDEO_TRANSITION:
        _map_transition(params, mapped)
    elif op is OperationType.FUSION:
        _map_fusion(params, mapped)
    elif mapped["prompt"] is None:
        raise _invalid("text_to_video needs a prompt")


def _source(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{name} must be an http(s) URL")
    return value.strip()


def _sources(params: dict[str, Any], bounds: tuple[int, int], what: str) -> list[str]:
    urls = params.get("image_urls")
    if not isinstance(urls, list) or not bounds[0] <= len(urls) <= bounds[1]:
        raise _invalid(f"{what} needs {bounds[0]} to {bounds[1]} image_urls")
    return [_source(u, "every image_urls item") for u in urls]


def _map_extend(params: dict[str, Any], mapped: dict[str, Any]) -> None:
    original = params.get("original_video_id")
    if original not in (None, ""):
        digits = str(original).removeprefix(OPENAPI_JOB_PREFIX)
        if not digits.isdigit():
            raise _invalid("original_video_id must be a Pixverse video id (digits)")
        mapped["original_video_id"] = int(digits)
    if params.get("video_url"):
        mapped["video_url"] = _source(params["video_url"], "video_url")
    if "original_video_id" not in mapped and "video_url" not in mapped:
        raise _invalid("video_extend needs video_url or original_video_id")
    if mapped["api_method"] == "openapi" and "original_video_id" not in mapped:
        raise _invalid("the OpenAPI extends by id only: pass original_video_id")


def _map_transition(params: dict[str, Any], mapped: dict[str, Any]) -> None:
    sources = _sources(params, TRANSITION_IMAGES, "video_transition")
    segments = len(sources) - 1
    prompts = params.get("prompts")
    if prompts is None:
        if mapped["prompt"] is None:
            raise _invalid("video_transition needs prompts (one per segment) or a prompt")
        prompts = [mapped["prompt"]] * segments
    if not isinstance(prompts, list) or len(prompts) != segments or not all(_prompt(p) for p in prompts):
        raise _invalid(f"{len(sources)} images need {segments} non-empty prompts")
    durations = params.get("durations") or [5] * segments
    if not isinstance(durations, list) or len(durations) != segments:
        raise _invalid(f"{len(sources)} images need {segments} durations")
    low, high = TRANSITION_SEGMENT_SECONDS
    try:
        durations = [max(low, min(int(d), high)) for d in durations]
    except (TypeError, ValueError):
        raise _invalid("durations must be whole seconds") from None
    mapped.update(sources=sources, prompts=[p.strip() for p in prompts], durations=durations)


def _map_fusion(params: dict[str, Any], mapped: dict[str, Any]) -> None:
    sources = _sources(params, FUSION_IMAGES, "fusion")
    if mapped["prompt"] is None:
        raise _invalid("fusion needs a prompt that names its references (@1, @2, ...)")
    prompt = _REF_ALIASES.sub(lambda m: f"@{m.group(1)}", mapped["prompt"])
    if not _REF_TOKEN.search(prompt):
        prompt = f"{prompt} " + " ".join(f"@{i}" for i in range(1, len(sources) + 1))
    mapped.update(prompt=prompt, sources=sources)


def _map_image(op: OperationType, params: dict[str, Any], mapped: dict[str, Any]) -> None:
    if mapped["prompt"] is None:
        raise _invalid(f"{op.value} needs a prompt")
    model_id = params.get("model") or DEFAULT_IMAGE_MODEL
    model = IMAGE_MODELS.get(model_id)
    if model is None:
        raise _invalid(f"unknown image model {model_id!r}")
    quality = params.get("quality") or DEFAULT_IMAGE_QUALITY
    quality = IMAGE_QUALITY_ALIASES.get(quality.lower(), quality.lower())
    if quality not in model.qualities:
        raise _invalid(f"model {model_id} offers {', '.join(model.qualities)}, not {quality}")
    aspect = params.get("aspect_ratio") or "16:9"
    if aspect not in model.aspect_ratios:
        raise _invalid(f"model {model_id} does not offer aspect ratio {aspect}")
    seed = int(params.get("seed") or 0)  # 0: Pixverse picks one
    mapped["options"] = {"model": model_id, "quality": quality, "aspect_ratio": aspect, "seed": seed}
    if op is OperationType.IMAGE_TO_IMAGE:
        mapped["sources"] = _sources(params, (1, model.max_images), f"model {model_id}")
    else:
        mapped["sources"] = []


def credits_for(op: OperationType, mapped: dict[str, Any]) -> int | None:
    """What Pixverse will charge for the mapped job, in the credit pool of its API (None: unknown)."""
    options = mapped["options"]
    if op in IMAGE_OPERATIONS:
        return pricing.image_cost(options["model"], options["quality"])
    if op is OperationType.VIDEO_TRANSITION:
        return pricing.transition_cost(
            model=options["model"],
            quality=options["quality"],
            images=len(mapped["sources"]),
            audio=bool(options.get("audio")),
        )
    try:
        return pricing.video_cost(
            api="openapi" if mapped["api_method"] == "openapi" else "web",
            model=options["model"],
            quality=options["quality"],
            duration=options["duration"],
            multi_shot=bool(options.get("multi_shot")),
            audio=bool(options.get("audio")),
        )
    except ValueError as exc:  # no price: Pixverse does not sell this combination on that API
        raise _invalid(str(exc)) from None


def credit_type_for(mapped: dict[str, Any]) -> str:
    """The credit pool the job draws on: `openapi` for API-key jobs, `web` for browser-session jobs."""
    return "openapi" if mapped["api_method"] == "openapi" else "web"
