"""How the fake Pixverse API reads and refuses a submit: one `Order` per valid body, or a `Refusal`
carrying the ErrCode Pixverse answers (400011 empty, 400017 invalid, 400018/400019 too long,
400032 unknown img_id, 500042 unknown image path)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from . import fake_jobs as jobs
from .catalog import (
    ASPECT_RATIOS,
    EXTEND_MODELS,
    FUSION_MODELS,
    IMAGE_MODELS,
    TRANSITION_MODELS,
    VIDEO_MODELS,
)

MAX_TEXT = 5000


class Refusal(Exception):
    def __init__(self, err_code: int, err_msg: str) -> None:
        super().__init__(err_msg)
        self.err_code, self.err_msg = err_code, err_msg


class Media(Protocol):
    """What the server knows about media when it checks references."""

    def known_path(self, path: str) -> bool: ...
    def known_upload(self, img_id: Any) -> bool: ...
    def finished_video(self, video_id: Any = None, path: str | None = None) -> jobs.Job | None: ...


@dataclass
class Order:
    kind: str
    create_mode: str
    model: str
    quality: str
    duration: int
    aspect_ratio: str | None
    prompts: list[str]
    seed: int
    cost: int
    multi_shot: bool = False
    audio: bool = False
    inputs: list[str] = field(default_factory=list)


def _text(body: dict, name: str, limit_code: int, required: bool = True) -> str:
    value = body.get(name)
    if value in (None, ""):
        if required:
            raise Refusal(400011, f"{name} is empty")
        return ""
    if not isinstance(value, str):
        raise Refusal(400017, f"{name} must be a string")
    if len(value) > MAX_TEXT:
        raise Refusal(limit_code, f"{name} exceeds {MAX_TEXT} characters")
    return value


def _flag(body: dict, name: str, supported: bool, model: str) -> bool:
    value = body.get(name)
    if value in (None, 0, False):
        return False
    if not supported:
        raise Refusal(400017, f"{name} is not supported by model {model}")
    return True


def _seed(body: dict) -> int:
    seed = body.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise Refusal(400017, "seed must be a non-negative integer")
    return seed


def _web_images(
    body: dict,
    media: Media,
    bounds: tuple[int, int],
    url_key="customer_img_urls",
    path_key="customer_img_paths",
) -> list[str]:
    urls, paths = body.get(url_key), body.get(path_key)
    if not isinstance(urls, list) or not isinstance(paths, list) or len(urls) != len(paths):
        raise Refusal(400017, f"{url_key} and {path_key} must be lists of the same length")
    if not bounds[0] <= len(urls) <= bounds[1]:
        raise Refusal(400017, f"{bounds[0]} to {bounds[1]} images are required")
    for url, path in zip(urls, paths, strict=True):
        if (
            not isinstance(url, str)
            or not isinstance(path, str)
            or not url.endswith(path)
            or not media.known_path(path)
        ):
            raise Refusal(500042, "invalid image path")
    return list(paths)


def parse_order(op: str, api: str, body: dict, media: Media) -> Order:
    """Validate a submit body the way Pixverse does; raises Refusal."""
    if op == "i2i":
        return _image_order(body, media)
    allowed = {"extend": EXTEND_MODELS, "fusion": FUSION_MODELS, "transition": TRANSITION_MODELS}.get(
        op, tuple(VIDEO_MODELS)
    )
    model_id = body.get("model", "v5")
    if model_id not in allowed:
        raise Refusal(400017, f"model {model_id} is not available for this feature")
    model = VIDEO_MODELS[model_id]
    quality = body.get("quality", model.qualities[0])
    if quality not in model.qualities:
        raise Refusal(400017, f"quality {quality} is not supported by model {model_id}")
    if api == "openapi" and quality not in jobs.OPENAPI_RATE:
        raise Refusal(500071, f"quality {quality} is not available on the API")
    negative = _text(body, "negative_prompt", 400019, required=False)
    multi_shot = _flag(body, "multi_shot", model.multi_shot, model_id)
    audio = _flag(body, "audio", model.audio, model_id)
    if body.get("camera_movement") and not model.camera_movement:
        raise Refusal(400017, f"camera_movement is not supported by model {model_id}")
    aspect = body.get("aspect_ratio")
    if aspect is not None and aspect not in ASPECT_RATIOS:
        raise Refusal(400017, f"aspect_ratio {aspect} is not supported")
    inputs: list[str] = []
    if op == "transition":
        inputs = _web_images(body, media, (2, 7))
        prompts, durations = body.get("prompts"), body.get("durations")
        if (
            not isinstance(prompts, list)
            or len(prompts) != len(inputs) - 1
            or not all(isinstance(p, str) and p.strip() for p in prompts)
        ):
            raise Refusal(400011, "one prompt per transition segment is required")
        if (
            not isinstance(durations, list)
            or len(durations) != len(prompts)
            or not all(isinstance(d, int) and 1 <= d <= 8 for d in durations)
        ):
            raise Refusal(400017, "durations must be 1 to 8 seconds, one per segment")
        cost = jobs.transition_price(model_id, quality, len(inputs), audio)
        return Order(
            "video",
            op,
            model_id,
            quality,
            sum(durations),
            aspect,
            [*prompts, negative],
            _seed(body),
            cost,
            audio=audio,
            inputs=inputs,
        )
    prompt = _text(body, "prompt", 400018)
    duration = body.get("duration", 5)
    if not isinstance(duration, int) or isinstance(duration, bool) or not 1 <= duration <= model.max_duration:
        raise Refusal(400017, f"duration must be 1 to {model.max_duration} seconds for model {model_id}")
    if op == "t2v" and api == "web" and aspect is None:
        raise Refusal(400011, "aspect_ratio is empty")
    if op == "i2v":
        if api == "openapi":
            if not media.known_upload(body.get("img_id")):
                raise Refusal(400032, "invalid img_id")
            inputs = [f"img_id:{body['img_id']}"]
        else:
            inputs = _web_images(
                {"u": [body.get("customer_img_url")], "p": [body.get("customer_img_path")]},
                media,
                (1, 1),
                "u",
                "p",
            )
    elif op == "fusion":
        if api == "openapi":
            refs = body.get("image_references")
            if not isinstance(refs, list) or not 1 <= len(refs) <= 3:
                raise Refusal(400017, "1 to 3 image_references are required")
            if not all(isinstance(r, dict) and media.known_upload(r.get("img_id")) for r in refs):
                raise Refusal(400032, "invalid img_id")
            inputs = [f"img_id:{r['img_id']}" for r in refs]
        else:
            inputs = _web_images(body, media, (1, 3))
    elif op == "extend":
        source = media.finished_video(
            body.get("video_id" if api == "openapi" else "original_video_id"), body.get("customer_video_path")
        )
        if source is None:
            raise Refusal(400017, "the video to extend does not exist or has not finished")
        inputs, aspect = [str(source.id)], source.aspect_ratio
    cost = jobs.video_price(api, model_id, quality, duration, multi_shot, audio)
    return Order(
        "video",
        op,
        model_id,
        quality,
        duration,
        aspect or "16:9",
        [prompt, negative],
        _seed(body),
        cost,
        multi_shot=multi_shot,
        audio=audio,
        inputs=inputs,
    )


def _image_order(body: dict, media: Media) -> Order:
    model = IMAGE_MODELS.get(body.get("model", "qwen-image"))
    if model is None:
        raise Refusal(400017, f"model {body.get('model')} is not an image model")
    prompt = _text(body, "prompt", 400018)
    quality = body.get("quality", "720p")
    if quality not in model.qualities:
        raise Refusal(400017, f"quality {quality} is not supported by model {model.id}")
    aspect = body.get("aspect_ratio", "16:9")
    if aspect not in model.aspect_ratios:
        raise Refusal(400017, f"aspect_ratio {aspect} is not supported by model {model.id}")
    inputs = _web_images(body, media, (0, model.max_images)) if body.get("customer_img_urls") else []
    create_mode = "i2i" if inputs else "t2i"
    cost = jobs.image_price(model.id, quality)
    return Order(
        "image", create_mode, model.id, quality, 0, aspect, [prompt], _seed(body), cost, inputs=inputs
    )
