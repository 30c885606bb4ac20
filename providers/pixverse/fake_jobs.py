"""State of the fake Pixverse API: accounts, jobs on a clock, what Pixverse charges, and the JSON
records its lists and result endpoints show."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Pixverse's own price list, kept apart from the adapter's: the fake is the outside world.
_WEB_RATE = {"360p": 4, "540p": 6, "720p": 8, "1080p": 16}
_PARTNER_RATE = {"grok-imagine": {"480p": 10, "720p": 15}}
OPENAPI_RATE = {"360p": 9, "540p": 9, "720p": 12, "1080p": 24}
_IMAGE_PRICE = {
    ("gemini-3.0", "1080p"): 50,
    ("gemini-3.0", "1440p"): 50,
    ("gemini-3.0", "2160p"): 90,
    ("gemini-2.5-flash", "1080p"): 15,
    ("gemini-3.1-flash", "512p"): 16,
    ("gemini-3.1-flash", "1080p"): 25,
    ("gemini-3.1-flash", "1440p"): 40,
    ("gemini-3.1-flash", "2160p"): 60,
    ("seedream-4.0", "1080p"): 10,
    ("seedream-4.0", "1440p"): 10,
    ("seedream-4.0", "2160p"): 10,
    ("seedream-4.5", "1440p"): 10,
    ("seedream-4.5", "2160p"): 10,
    ("seedream-5.0-lite", "1440p"): 15,
    ("seedream-5.0-lite", "2160p"): 15,
    ("qwen-image", "720p"): 5,
    ("qwen-image", "1080p"): 10,
}
DONE, FAILED, FILTERED = 1, 8, 7
OUTCOME_CODE = {"success": DONE, "fail": FAILED, "filter": FILTERED}
#: Codes after which Pixverse gives the credits back.
REFUNDED_CODES = frozenset({-1, 3, 4, 7, 8, 9, 17})
RUNNING_CODES = frozenset({0, 2, 5, 10})


def video_price(api: str, model: str, quality: str, duration: int, multi_shot: bool, audio: bool) -> int:
    rates = OPENAPI_RATE if api == "openapi" else _PARTNER_RATE.get(model, _WEB_RATE)
    base = rates[quality] * duration
    extra = (20 if duration > 5 else 10) if multi_shot else 0
    if audio:
        extra += math.ceil(base / 4) if model in ("v6", "pixverse-c1") else 10
    return base + extra


def transition_price(model: str, quality: str, images: int, audio: bool) -> int:
    return video_price("web", model, quality, 5, False, audio) + 20 * max(0, images - 2)


def image_price(model: str, quality: str) -> int:
    return _IMAGE_PRICE.get((model, quality), 10)


def frame_size(quality: str, aspect_ratio: str | None) -> tuple[int, int]:
    """Pixels for a quality (the short edge) and an aspect ratio; 16:9 when none or "auto"."""
    short = int(re.match(r"(\d+)", quality)[1])
    match = re.fullmatch(r"(\d+):(\d+)", aspect_ratio or "") or re.fullmatch(r"(\d+):(\d+)", "16:9")
    w, h = int(match[1]), int(match[2])
    if w >= h:
        return 2 * round(short * w / h / 2), short
    return short, 2 * round(short * h / w / 2)


@dataclass
class Account:
    id: int
    email: str
    username: str
    balance: dict[str, int | None]  # credit pool ("web", "openapi") -> initial credits; None: unlimited
    notified: set[int] = field(default_factory=set)  # ids the message endpoint already announced


@dataclass
class Job:
    id: int
    kind: str  # "video" | "image"
    create_mode: str  # t2v, i2v, extend, transition, fusion, i2i, t2i
    api: str  # "web" | "openapi"
    account_id: int
    token: str  # file name stem of its outputs
    model: str
    quality: str
    duration: int  # seconds of output (0 for images)
    aspect_ratio: str | None
    prompt: str
    seed: int
    cost: int
    outcome: str  # success | fail | filter
    latency: float
    multi_shot: bool = False
    audio: bool = False
    started: float = field(default_factory=time.monotonic)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    forced: tuple[int, bool] | None = None  # test hook: (status code, output size known)

    @property
    def size(self) -> tuple[int, int]:
        return frame_size(self.quality, self.aspect_ratio)

    def code(self, now: float) -> int:
        """The status code at `now`: 10 (early queue) for the first tenth, then 5, then the outcome."""
        if self.forced is not None:
            return self.forced[0]
        fraction = 1.0 if self.latency <= 0 else (now - self.started) / self.latency
        if fraction >= 1:
            return OUTCOME_CODE[self.outcome]
        return 10 if fraction < 0.1 else 5

    def has_output(self, now: float) -> bool:
        """Whether the real files exist (and the CDN serves them)."""
        code = self.code(now)
        return code == DONE or (code == 10 and self.forced is not None and self.forced[1])

    def charged(self, now: float) -> int:
        return 0 if self.code(now) in REFUNDED_CODES else self.cost

    def running(self, now: float) -> bool:
        return self.code(now) in RUNNING_CODES and not self.has_output(now)

    # -- what the API shows -------------------------------------------------------------------------
    def files(self) -> dict[str, str]:
        """Relative paths of its output files, by role."""
        if self.kind == "image":
            return {"image": f"pixverse/image/web/ori/{self.token}.png"}
        folder = "openapi/output" if self.api == "openapi" else "pixverse/mp4/media/web/ori"
        return {
            "video": f"{folder}/{self.token}.mp4",
            "first_frame": f"pixverse/img/media/web/ori/{self.token}_first.png",
            "last_frame": f"pixverse/img/media/web/ori/{self.token}_last.png",
        }

    def web_record(self, base: str, now: float) -> dict[str, Any]:
        """The item `/creative_platform/{video,image}/list/personal` shows."""
        code, done = self.code(now), self.has_output(now)
        width, height = self.size if done else (0, 0)
        files = {role: f"{base}/{path}" for role, path in self.files().items()}
        common = {
            "prompt": self.prompt,
            "model": self.model,
            "quality": self.quality,
            "seed": self.seed,
            "aspect_ratio": self.aspect_ratio,
            "create_time": self.created.isoformat(timespec="seconds"),
            "output_width": width,
            "output_height": height,
            "credit_change": self.cost,
        }
        if self.kind == "image":
            url = (
                files["image"]
                if done
                else (f"{base}/pixverse/jpg/media/default.jpg" if code in RUNNING_CODES else "")
            )
            return {"image_id": self.id, "image_status": code, "image_url": url, **common}
        running = code in RUNNING_CODES and not done
        return {
            "video_id": self.id,
            "video_status": code,
            "create_mode": self.create_mode,
            **common,
            "duration": self.duration,
            "multi_shot": int(self.multi_shot),
            "audio": int(self.audio),
            # Pixverse pre-allocates template URLs while a video renders.
            "url": files["video"] if done else (f"{base}/pixverse/mp4/media/default.mp4" if running else ""),
            "first_frame": files["first_frame"] if done else "",
            "last_frame": files["last_frame"]
            if done
            else (f"{base}/pixverse/jpg/media/default.jpg" if running else ""),
        }

    def openapi_record(self, base: str, now: float) -> dict[str, Any]:
        """`GET /openapi/v2/video/result/{id}`: documented codes 1, 5, 7, 8 only."""
        code, done = self.code(now), self.has_output(now)
        if self.forced is None and code in (0, 10):
            code = 5
        width, height = self.size if done else (0, 0)
        return {
            "id": self.id,
            "status": code,
            "url": f"{base}/{self.files()['video']}" if done else "",
            "outputWidth": width,
            "outputHeight": height,
            "size": width * height,
            "prompt": self.prompt,
            "negative_prompt": "",
            "seed": self.seed,
            "style": "",
            "resolution_ratio": int(self.quality[:-1]),
            "create_time": self.created.isoformat(timespec="seconds"),
            "modify_time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
