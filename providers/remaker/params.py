"""Remaker's two editors, their models and options: the parameter spec and canonical -> mapped params.

Remaker has two web tools that PixSim runs as image operations:
- the **prompt-editor** (`image_to_image`): instruction-based editing of one or more images;
- the **photo-editor** (`image_edit`, or `image_to_image` with a mask): inpainting, where a PNG mask
  marks what to repaint (white = inpaint, black = keep).
"""

from __future__ import annotations

from typing import Any

from pixsim_provider_sdk import InvalidParametersError, OperationType

PROMPT_EDITOR = "prompt-editor"
PHOTO_EDITOR = "photo-editor"

PROMPT_MAX_CHARS = 5000
#: Models of the prompt-editor (`task_type`), in the order the site lists them.
PROMPT_EDITOR_MODELS = ["sd", "sd5", "flux", "qwen", "nano", "nano2", "nano_pro"]
#: The photo-editor (inpainting) runs only these two.
PHOTO_EDITOR_MODELS = ["sd", "flux"]
MODEL_LABELS = {
    "sd": "Seedream 4",
    "sd5": "Seedream 4.5",
    "flux": "Flux Kontext",
    "qwen": "Qwen Image Edit",
    "nano": "Nano Banana",
    "nano2": "Nano Banana 2",
    "nano_pro": "Nano Banana Pro",
}
DEFAULT_MODEL = "sd"
ASPECT_RATIOS = ["match_input_image", "1:1", "2:3", "3:4", "9:16", "3:2", "4:3", "16:9", "21:9"]
DEFAULT_ASPECT_RATIO = "match_input_image"
RESOLUTIONS = ["1K", "2K", "3K", "4K"]
DEFAULT_RESOLUTION = "2K"
#: Resolutions each model can render; a request above a model's best is clamped down (flux: 1K only).
RESOLUTIONS_PER_MODEL = {
    "sd": ["1K", "2K", "4K"],
    "sd5": ["1K", "2K", "3K", "4K"],
    "flux": ["1K"],
    "qwen": ["1K"],
    "nano": ["1K"],
    "nano2": ["1K", "2K", "4K"],
    "nano_pro": ["1K", "2K", "4K"],
}
#: How many input images (`image_files`) the prompt-editor takes per model.
MAX_IMAGES_PER_MODEL = {"sd": 4, "sd5": 4, "flux": 1, "qwen": 1, "nano": 3, "nano2": 3, "nano_pro": 6}

_PROMPT = {
    "name": "prompt",
    "type": "string",
    "required": True,
    "max_length": PROMPT_MAX_CHARS,
    "group": "core",
    "description": "Edit instruction (prompt-editor) or what to paint into the masked area (photo-editor)",
}
_IMAGE = {
    "name": "image_url",
    "type": "string",
    "required": True,
    "group": "core",
    "description": "Source image: an http(s) URL (PNG, JPEG or WebP)",
}


def clamp_resolution(model: str, requested: str | None) -> str:
    """The best resolution `model` renders that is not above `requested` (its lowest if none is)."""
    allowed = RESOLUTIONS_PER_MODEL.get(model, ["1K"])
    wanted = (
        RESOLUTIONS.index(requested) if requested in RESOLUTIONS else RESOLUTIONS.index(DEFAULT_RESOLUTION)
    )
    fitting = [r for r in allowed if RESOLUTIONS.index(r) <= wanted]
    return fitting[-1] if fitting else allowed[0]


def parameter_spec() -> dict[str, dict[str, Any]]:
    """The gateway's validation rules and the UI's form hints, per operation."""
    mask_optional = {
        "name": "mask_url",
        "type": "string",
        "group": "core",
        "description": "Optional inpainting mask (PNG, white = repaint). With a mask the job runs on the "
        "photo-editor, which supports task_type sd and flux only",
    }
    prompt_editor = [
        _PROMPT,
        _IMAGE,
        {
            "name": "extra_image_urls",
            "type": "array",
            "default": [],
            "group": "core",
            "description": "More input images for multi-image edits; at most "
            + ", ".join(f"{m} {n - 1}" for m, n in MAX_IMAGES_PER_MODEL.items()),
        },
        {
            "name": "task_type",
            "type": "string",
            "enum": list(PROMPT_EDITOR_MODELS),
            "default": DEFAULT_MODEL,
            "description": "Model: " + ", ".join(f"{k}={v}" for k, v in MODEL_LABELS.items()),
        },
        {
            "name": "aspect_ratio",
            "type": "string",
            "enum": list(ASPECT_RATIOS),
            "default": DEFAULT_ASPECT_RATIO,
            "description": "Output aspect ratio (prompt-editor only)",
        },
        {
            "name": "image_resolution",
            "type": "string",
            "enum": list(RESOLUTIONS),
            "default": DEFAULT_RESOLUTION,
            "description": "Output resolution (prompt-editor only), clamped per model: "
            + "; ".join(f"{m} {'/'.join(r)}" for m, r in RESOLUTIONS_PER_MODEL.items()),
        },
        mask_optional,
    ]
    photo_editor = [
        _PROMPT,
        _IMAGE,
        {**mask_optional, "required": True, "description": "Inpainting mask (PNG, white = repaint)"},
        {
            "name": "task_type",
            "type": "string",
            "enum": list(PHOTO_EDITOR_MODELS),
            "default": DEFAULT_MODEL,
            "description": "Model: sd=Seedream 4, flux=Flux Kontext",
        },
    ]
    return {
        OperationType.IMAGE_TO_IMAGE.value: {"parameters": prompt_editor},
        OperationType.IMAGE_EDIT.value: {"parameters": photo_editor},
    }


def map_params(operation_type: OperationType, params: dict[str, Any], provider_id: str) -> dict[str, Any]:
    """Canonical params -> the mapped payload (pure). Sources stay URLs/paths until file preparation.

    Shape: `{"mode", "prompt", "task_type", "image_sources": [...], "mask_source"?, "aspect_ratio"?,
    "image_resolution"?}`.
    """
    prompt = params.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidParametersError(f"{provider_id}: a non-empty prompt is required")
    if len(prompt) > PROMPT_MAX_CHARS:
        raise InvalidParametersError(
            f"{provider_id}: the prompt is longer than {PROMPT_MAX_CHARS} characters"
        )
    image = params.get("image_url")
    if not isinstance(image, str) or not image.strip():
        raise InvalidParametersError(f"{provider_id}: image_url is required")
    mask = params.get("mask_url") or None
    if operation_type is OperationType.IMAGE_EDIT and not mask:
        raise InvalidParametersError(f"{provider_id}: image_edit needs mask_url (a PNG inpainting mask)")
    task_type = params.get("task_type") or DEFAULT_MODEL

    if mask:  # the reference behaviour: a mask selects the photo-editor, whatever the operation
        if task_type not in PHOTO_EDITOR_MODELS:
            raise InvalidParametersError(
                f"{provider_id}: inpainting (with mask_url) supports task_type {PHOTO_EDITOR_MODELS}, "
                f"not {task_type!r}"
            )
        if params.get("extra_image_urls"):
            raise InvalidParametersError(f"{provider_id}: inpainting takes one image; drop extra_image_urls")
        return {
            "mode": PHOTO_EDITOR,
            "prompt": prompt,
            "task_type": task_type,
            "image_sources": [image],
            "mask_source": mask,
        }

    if task_type not in PROMPT_EDITOR_MODELS:
        raise InvalidParametersError(f"{provider_id}: task_type must be one of {PROMPT_EDITOR_MODELS}")
    extra = params.get("extra_image_urls") or []
    if not isinstance(extra, list) or not all(isinstance(u, str) and u for u in extra):
        raise InvalidParametersError(f"{provider_id}: extra_image_urls must be a list of http(s) URLs")
    sources = [image, *extra]
    if len(sources) > MAX_IMAGES_PER_MODEL[task_type]:
        raise InvalidParametersError(
            f"{provider_id}: task_type {task_type!r} takes at most {MAX_IMAGES_PER_MODEL[task_type]} images, "
            f"got {len(sources)}"
        )
    aspect_ratio = params.get("aspect_ratio") or DEFAULT_ASPECT_RATIO
    if aspect_ratio not in ASPECT_RATIOS:
        raise InvalidParametersError(f"{provider_id}: aspect_ratio must be one of {ASPECT_RATIOS}")
    return {
        "mode": PROMPT_EDITOR,
        "prompt": prompt,
        "task_type": task_type,
        "image_sources": sources,
        "aspect_ratio": aspect_ratio,
        "image_resolution": clamp_resolution(task_type, params.get("image_resolution")),
    }
