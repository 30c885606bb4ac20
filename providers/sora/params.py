"""Sora's parameters: the canonical form (what PixSim users send) and the Videos API body (what OpenAI gets).

Canonical: `prompt`, `model`, `duration` (an integer of seconds), `size` ("WxH") and, for image_to_video,
`image_url`. Remote: `prompt`, `model`, `seconds` (a *string*: the API's enum is "4" | "8" | "12"), `size`
and the `input_reference` image, uploaded as a multipart file part.
"""

from __future__ import annotations

from typing import Any

from pixsim_provider_sdk import InvalidParametersError, OperationType

BASE_MODEL = "sora-2"
PRO_MODEL = "sora-2-pro"
MODELS = (BASE_MODEL, PRO_MODEL)
PORTRAIT, LANDSCAPE = "720x1280", "1280x720"
TALL, WIDE = "1024x1792", "1792x1024"
#: The sizes each model renders; sora-2 has only the 720p pair.
MODEL_SIZES: dict[str, tuple[str, ...]] = {
    BASE_MODEL: (PORTRAIT, LANDSCAPE),
    PRO_MODEL: (PORTRAIT, LANDSCAPE, TALL, WIDE),
}
ALL_SIZES = MODEL_SIZES[PRO_MODEL]
DURATIONS = (4, 8, 12)
DEFAULT_MODEL, DEFAULT_DURATION, DEFAULT_SIZE = BASE_MODEL, 4, PORTRAIT
#: OpenAI does not publish a prompt limit; this keeps request bodies sane.
PROMPT_MAX = 10_000
#: The fields of the Videos API body; everything else in the mapped params stays on this side.
REMOTE_FIELDS = ("model", "prompt", "seconds", "size")
VIDEO_OPERATIONS = (OperationType.TEXT_TO_VIDEO, OperationType.IMAGE_TO_VIDEO)


def parameter_spec() -> dict[str, dict[str, Any]]:
    """The gateway's validation rules and the UI form, per operation."""
    common = [
        {
            "name": "prompt",
            "type": "string",
            "required": True,
            "max_length": PROMPT_MAX,
            "group": "core",
            "description": "What happens in the video: subject, camera, lighting, action",
        },
        {
            "name": "model",
            "type": "string",
            "enum": list(MODELS),
            "default": DEFAULT_MODEL,
            "description": "sora-2 (fast, 720p) or sora-2-pro (higher fidelity, also 1024x1792 / 1792x1024)",
        },
        {
            "name": "duration",
            "type": "integer",
            "enum": list(DURATIONS),
            "default": DEFAULT_DURATION,
            "min": DURATIONS[0],
            "max": DURATIONS[-1],
            "description": "Length of the clip in seconds (the API accepts 4, 8 or 12)",
        },
    ]
    size = {
        "name": "size",
        "type": "string",
        "enum": list(ALL_SIZES),
        "description": "Output resolution WxH; 1024x1792 and 1792x1024 need sora-2-pro",
    }
    image = {
        "name": "image_url",
        "type": "string",
        "required": True,
        "group": "core",
        "description": "First-frame reference image (PNG, JPEG or WebP; an http(s) URL). "
        "It must have exactly the video's size",
    }
    return {
        OperationType.TEXT_TO_VIDEO.value: {"parameters": [*common, {**size, "default": DEFAULT_SIZE}]},
        OperationType.IMAGE_TO_VIDEO.value: {
            "parameters": [
                *common,
                {**size, "description": size["description"] + "; default: the image's size"},
                image,
            ]
        },
    }


def map_parameters(provider_id: str, operation_type: OperationType, params: dict[str, Any]) -> dict[str, Any]:
    """Canonical params -> the Videos API fields (+ `image_url` for this side). Pure; raises
    InvalidParametersError for combinations the spec cannot express (a size the model does not render)."""
    prompt = params.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidParametersError(f"{provider_id}: prompt is required")
    model = params.get("model") or DEFAULT_MODEL
    if model not in MODELS:
        raise InvalidParametersError(f"{provider_id}: model must be one of {list(MODELS)}, got {model!r}")
    duration = params.get("duration") or DEFAULT_DURATION
    if isinstance(duration, bool) or duration not in DURATIONS:
        raise InvalidParametersError(
            f"{provider_id}: duration must be one of {list(DURATIONS)}, got {duration!r}"
        )
    size = params.get("size")
    if size is None and operation_type is OperationType.TEXT_TO_VIDEO:
        size = DEFAULT_SIZE
    if size is not None:
        check_size(provider_id, model, size)
    mapped: dict[str, Any] = {"model": model, "prompt": prompt, "seconds": str(int(duration)), "size": size}
    if operation_type is OperationType.IMAGE_TO_VIDEO:
        mapped["image_url"] = params.get("image_url")
    return mapped


def check_size(provider_id: str, model: str, size: str) -> None:
    if size not in MODEL_SIZES.get(model, ()):
        raise InvalidParametersError(
            f"{provider_id}: {model} renders {', '.join(MODEL_SIZES.get(model, ()))}; size {size!r} is not one of them"
        )


def size_for_image(model: str, width: int, height: int) -> str | None:
    """The size an input image of width x height needs (the service wants an exact match), if the model has it."""
    size = f"{width}x{height}"
    return size if size in MODEL_SIZES.get(model, ()) else None


def dimensions(size: str) -> tuple[int, int]:
    width, _, height = size.partition("x")
    return int(width), int(height)
