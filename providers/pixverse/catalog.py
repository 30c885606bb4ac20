"""What Pixverse offers: its video and image models and the values its options accept.

Shared by the parameter spec, the parameter mapping and the status mapping (partner models that
Pixverse proxies through fal report their statuses differently).
"""

from __future__ import annotations

from dataclasses import dataclass

from pixsim_provider_sdk import OperationType

VIDEO_QUALITIES = ("360p", "540p", "720p", "1080p")


@dataclass(frozen=True)
class VideoModel:
    id: str
    qualities: tuple[str, ...] = VIDEO_QUALITIES
    max_duration: int = 10
    camera_movement: bool = True
    audio: bool = False
    multi_shot: bool = False
    extend: bool = False
    fusion: bool = False
    fal_proxied: bool = False  # a partner model run through fal: different status codes


VIDEO_MODELS: dict[str, VideoModel] = {
    m.id: m
    for m in (
        VideoModel("v5", extend=True, fusion=True),
        VideoModel("v5-fast", camera_movement=False),
        VideoModel("v5.5", camera_movement=False, audio=True, multi_shot=True, extend=True),
        VideoModel("v5.6", camera_movement=False, audio=True, fusion=True),
        VideoModel("v6", camera_movement=False, audio=True, multi_shot=True, max_duration=15),
        VideoModel("pixverse-c1", camera_movement=False, audio=True, fusion=True, max_duration=15),
        VideoModel("grok-imagine", qualities=("480p", "720p"), camera_movement=False, fal_proxied=True),
    )
}
#: Partner models whose jobs follow the fal status table (some are not offered for submission here).
FAL_PROXIED_MODELS = frozenset({"grok-imagine", "happyhorse-1.0"})
DEFAULT_VIDEO_MODEL = "v5"
EXTEND_MODELS = tuple(m.id for m in VIDEO_MODELS.values() if m.extend)
FUSION_MODELS = tuple(m.id for m in VIDEO_MODELS.values() if m.fusion)
#: Transitions ("frames") run on Pixverse's own models only.
TRANSITION_MODELS = tuple(m.id for m in VIDEO_MODELS.values() if not m.fal_proxied)

ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9")
IMAGE_ASPECT_RATIOS = ("auto", "21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16")
STYLES = ("anime", "3d_animation", "clay", "comic", "cyberpunk")
MOTION_MODES = ("normal", "fast")
CAMERA_MOVEMENTS = (
    "horizontal_left",
    "horizontal_right",
    "vertical_up",
    "vertical_down",
    "crane_up",
    "dolly_zoom",
    "zoom_in",
    "zoom_out",
    "quickly_push_in",
    "quickly_push_out",
    "smooth_push_in",
    "super_pull_out",
    "left_tracking_shot",
    "right_tracking_shot",
    "left_arc_shot",
    "right_arc_shot",
    "fixed_shot",
    "dutch_angle",
    "robo_arm",
    "whip_pan",
)


@dataclass(frozen=True)
class ImageModel:
    id: str
    qualities: tuple[str, ...]
    max_images: int = 3
    aspect_ratios: tuple[str, ...] = IMAGE_ASPECT_RATIOS


IMAGE_MODELS: dict[str, ImageModel] = {
    m.id: m
    for m in (
        ImageModel("qwen-image", ("720p", "1080p"), aspect_ratios=IMAGE_ASPECT_RATIOS[1:]),
        ImageModel("gemini-3.0", ("1080p", "1440p", "2160p"), max_images=9),
        ImageModel("gemini-2.5-flash", ("1080p",)),
        ImageModel("gemini-3.1-flash", ("512p", "1080p", "1440p", "2160p")),
        ImageModel("seedream-4.0", ("1080p", "1440p", "2160p"), max_images=6),
        ImageModel("seedream-4.5", ("1440p", "2160p"), max_images=6),
        ImageModel("seedream-5.0-lite", ("1440p", "2160p"), max_images=6),
    )
}
DEFAULT_IMAGE_MODEL = "qwen-image"
DEFAULT_IMAGE_QUALITY = "720p"
IMAGE_QUALITIES = ("512p", "720p", "1080p", "1440p", "2160p", "2k", "4k")
#: Pixverse's image API takes resolutions; "2k"/"4k" are the names its UI and price list use.
IMAGE_QUALITY_ALIASES = {"2k": "1440p", "4k": "2160p"}

IMAGE_OPERATIONS = frozenset({OperationType.TEXT_TO_IMAGE, OperationType.IMAGE_TO_IMAGE})
VIDEO_OPERATIONS = frozenset(
    {
        OperationType.TEXT_TO_VIDEO,
        OperationType.IMAGE_TO_VIDEO,
        OperationType.VIDEO_EXTEND,
        OperationType.VIDEO_TRANSITION,
        OperationType.FUSION,
    }
)
#: Operations the OpenAPI (API key) surface offers; the rest exist on the WebAPI only.
OPENAPI_OPERATIONS = frozenset(
    {
        OperationType.TEXT_TO_VIDEO,
        OperationType.IMAGE_TO_VIDEO,
        OperationType.VIDEO_EXTEND,
        OperationType.FUSION,
    }
)
MAX_PROMPT = 5000
TRANSITION_IMAGES = (2, 7)
TRANSITION_SEGMENT_SECONDS = (1, 8)
FUSION_IMAGES = (1, 3)
