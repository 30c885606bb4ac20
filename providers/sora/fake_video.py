"""The fake Videos API's catalogue, price list and one video's timeline (standard library only)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

# The service's own catalogue and price list (cents a second). Deliberately not imported from the
# adapter: the fake models the service, and a shared table could hide a pricing bug in the adapter.
MODEL_SIZES = {
    "sora-2": ("720x1280", "1280x720"),
    "sora-2-pro": ("720x1280", "1280x720", "1024x1792", "1792x1024"),
}
SNAPSHOTS = {
    "sora-2-2025-10-06": "sora-2",
    "sora-2-2025-12-08": "sora-2",
    "sora-2-pro-2025-10-06": "sora-2-pro",
}
CENTS_PER_SECOND = {"720x1280": 10, "1280x720": 10}
PRO_CENTS_PER_SECOND = {"720x1280": 30, "1280x720": 30, "1024x1792": 50, "1792x1024": 50}
SECONDS = ("4", "8", "12")
#: The key `invalid_raw_data()` carries: well-formed, always refused.
REVOKED_KEY = "sk-proj-revoked" + "0" * 40
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")


def price(model: str, size: str, seconds: int) -> int:
    table = PRO_CENTS_PER_SECOND if SNAPSHOTS.get(model, model) == "sora-2-pro" else CENTS_PER_SECOND
    return table[size] * seconds


# -- one video --------------------------------------------------------------------------------------
@dataclass
class Video:
    id: str
    model: str
    prompt: str
    seconds: int
    size: str
    outcome: str  # completed | failed | moderated
    latency: float
    queue_fraction: float
    cost: int
    reference: tuple[str, int, int] | None = None  # the input_reference image: (mime type, width, height)
    owner: str = ""  # the bearer credential that created it (its project)
    started: float = field(default_factory=time.monotonic)
    created: float = field(default_factory=time.time)
    settled: bool = False  # a failed job's reserved credits were given back

    def state(self, now: float | None = None) -> tuple[str, int]:
        """(status, progress 0..100) at monotonic time `now`."""
        now = time.monotonic() if now is None else now
        fraction = 1.0 if self.latency <= 0 else (now - self.started) / self.latency
        if fraction >= 1:
            return (
                ("completed", 100)
                if self.outcome == "completed"
                else ("failed", min(99, int(fraction * 100)))
            )
        if fraction < self.queue_fraction:
            return "queued", 0
        return "in_progress", min(99, max(1, int(fraction * 100)))

    @property
    def finished(self) -> float:
        """Wall-clock time the render ends (or ended)."""
        return self.created + self.latency

    def expired(self, asset_ttl: float) -> bool:
        return self.state()[0] == "completed" and time.time() >= self.finished + asset_ttl

    def to_json(self, asset_ttl: float) -> dict[str, Any]:
        status, progress = self.state()
        data: dict[str, Any] = {
            "id": self.id,
            "object": "video",
            "model": self.model,
            "status": status,
            "progress": progress,
            "created_at": int(self.created),
            "completed_at": None,
            "expires_at": None,
            "error": None,
            "prompt": self.prompt,
            "seconds": str(self.seconds),
            "size": self.size,
            "remixed_from_video_id": None,
        }
        if status == "completed":
            data["completed_at"] = int(self.finished)
            # Rounded down, so a client never believes the assets live longer than they do.
            data["expires_at"] = math.floor(self.finished + asset_ttl)
        elif status == "failed":
            data["completed_at"] = int(self.finished)
            data["error"] = (
                {
                    "code": "moderation_blocked",
                    "message": "Your request was blocked by our moderation system.",
                }
                if self.outcome == "moderated"
                else {
                    "code": "video_generation_failed",
                    "message": "Video generation failed. Please try again.",
                }
            )
        return data
