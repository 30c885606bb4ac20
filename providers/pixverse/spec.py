"""The parameter spec per operation: UI form hints and the gateway's validation rules.

Cross-field rules that a flat spec cannot say (a quality a model does not offer, `prompts` that
do not match the images, extend without a source) are checked by `params.map_parameters`.
"""

from __future__ import annotations

from typing import Any

from pixsim_provider_sdk import OperationType

from .catalog import (
    ASPECT_RATIOS,
    CAMERA_MOVEMENTS,
    DEFAULT_IMAGE_MODEL,
    DEFAULT_IMAGE_QUALITY,
    EXTEND_MODELS,
    FUSION_IMAGES,
    FUSION_MODELS,
    IMAGE_MODELS,
    IMAGE_QUALITIES,
    MAX_PROMPT,
    MOTION_MODES,
    STYLES,
    TRANSITION_MODELS,
    VIDEO_MODELS,
)


def _field(name: str, type_: str, group: str, description: str, **rules: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "required": False,
        "group": group,
        "description": description,
        **rules,
    }


def _prompt(required: bool = True) -> dict[str, Any]:
    return {
        **_field("prompt", "string", "core", "What to generate", max_length=MAX_PROMPT),
        "required": required,
    }


def _video_core(models: tuple[str, ...], duration_max: int = 15) -> list[dict[str, Any]]:
    qualities = sorted({q for m in models for q in VIDEO_MODELS[m].qualities}, key=lambda q: int(q[:-1]))
    return [
        _field("model", "string", "render", "Pixverse video model", enum=list(models), default=models[0]),
        _field("quality", "string", "render", "Resolution (default: the model's lowest)", enum=qualities),
        _field(
            "duration",
            "integer",
            "render",
            "Seconds (clamped to the model's maximum: 10, or 15 for v6/c1)",
            min=1,
            max=duration_max,
            default=5,
        ),
        _field("seed", "integer", "advanced", "Seed for reproducible results", min=0, max=2_147_483_647),
    ]


_API_METHOD = _field(
    "api_method",
    "string",
    "advanced",
    "webapi: the browser session, billed in `web` credits; openapi: the API key, billed in `openapi` credits",
    enum=["webapi", "openapi"],
    default="webapi",
)
_NEGATIVE = _field("negative_prompt", "string", "style", "What to avoid", max_length=MAX_PROMPT)
_STYLE = _field("style", "string", "style", "Style preset", enum=list(STYLES))
_FEATURES = [
    _field("multi_shot", "boolean", "render", "Multi-shot video (v5.5, v6)"),
    _field("audio", "boolean", "render", "Native audio (v5.5 and newer)"),
]
_OFF_PEAK = _field("off_peak", "boolean", "advanced", "Queue for off-peak processing (subscription plans)")
_TEMPLATE = _field("template_id", "integer", "style", "Pixverse effect template id", min=1)
_MOTION = _field("motion_mode", "string", "render", "OpenAPI only: normal or fast", enum=list(MOTION_MODES))
_ASPECT = _field("aspect_ratio", "string", "render", "Frame shape", enum=list(ASPECT_RATIOS))
_SOURCE_HELP = "an http(s) URL (fetched and uploaded first) or a Pixverse media URL (used as is)"


def build_parameter_spec() -> dict[str, dict[str, Any]]:
    """`{operation: {"parameters": [...]}}` for every supported operation."""
    all_video = tuple(VIDEO_MODELS)
    t2v = [
        _prompt(),
        *_video_core(all_video),
        {**_ASPECT, "default": "16:9"},
        _NEGATIVE,
        _STYLE,
        _TEMPLATE,
        _MOTION,
        *_FEATURES,
        _OFF_PEAK,
        _API_METHOD,
    ]
    i2v = [
        _prompt(),
        {**_field("image_url", "string", "source", f"Start frame: {_SOURCE_HELP}"), "required": True},
        *_video_core(all_video),
        _NEGATIVE,
        _STYLE,
        _TEMPLATE,
        _MOTION,
        _field(
            "camera_movement", "string", "style", "Camera move (v5, v5-fast)", enum=list(CAMERA_MOVEMENTS)
        ),
        *_FEATURES,
        _OFF_PEAK,
        _API_METHOD,
    ]
    extend = [
        _prompt(),
        _field("video_url", "string", "source", "The video to extend: a Pixverse media URL"),
        _field(
            "original_video_id",
            "string",
            "source",
            "Or the Pixverse video id to extend (the provider_job_id of an earlier pixverse job)",
            max_length=64,
        ),
        *_video_core(EXTEND_MODELS),
        *_FEATURES,
        _API_METHOD,
    ]
    transition = [
        _prompt(required=False),
        {
            **_field("image_urls", "array", "source", f"2 to 7 key frames, each {_SOURCE_HELP}"),
            "required": True,
        },
        _field("prompts", "array", "core", "One prompt per segment (images - 1); default: `prompt` for each"),
        _field("durations", "array", "render", "Seconds per segment, 1 to 8 each (default 5)"),
        *[f for f in _video_core(TRANSITION_MODELS) if f["name"] != "duration"],
        _field("audio", "boolean", "render", "Native audio (v5.5 and newer)"),
    ]
    fusion = [
        _prompt(),
        {
            **_field(
                "image_urls",
                "array",
                "source",
                f"{FUSION_IMAGES[0]} to {FUSION_IMAGES[1]} references ({_SOURCE_HELP}); "
                "name them @1, @2... in the prompt",
            ),
            "required": True,
        },
        *_video_core(FUSION_MODELS),
        _ASPECT,
        _OFF_PEAK,
        _API_METHOD,
    ]
    image = [
        _prompt(),
        _field(
            "model",
            "string",
            "render",
            "Pixverse image model",
            enum=list(IMAGE_MODELS),
            default=DEFAULT_IMAGE_MODEL,
        ),
        _field(
            "quality",
            "string",
            "render",
            "Resolution; 2k = 1440p, 4k = 2160p",
            enum=list(IMAGE_QUALITIES),
            default=DEFAULT_IMAGE_QUALITY,
        ),
        _field(
            "aspect_ratio",
            "string",
            "render",
            "Frame shape (auto: follow the first image)",
            enum=list(IMAGE_MODELS["gemini-3.0"].aspect_ratios),
            default="16:9",
        ),
        _field(
            "seed",
            "integer",
            "advanced",
            "Seed for reproducible results (0: random)",
            min=0,
            max=2_147_483_647,
        ),
    ]
    i2i_sources = {
        **_field(
            "image_urls", "array", "source", f"1 to 9 source images (model dependent), each {_SOURCE_HELP}"
        ),
        "required": True,
    }
    return {
        OperationType.TEXT_TO_VIDEO.value: {"parameters": t2v},
        OperationType.IMAGE_TO_VIDEO.value: {"parameters": i2v},
        OperationType.VIDEO_EXTEND.value: {"parameters": extend},
        OperationType.VIDEO_TRANSITION.value: {"parameters": transition},
        OperationType.FUSION.value: {"parameters": fusion},
        OperationType.TEXT_TO_IMAGE.value: {"parameters": image},
        OperationType.IMAGE_TO_IMAGE.value: {"parameters": [*image, i2i_sources]},
    }
