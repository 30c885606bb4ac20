"""What the API returns, as small read-only objects (the raw JSON stays available as `.raw`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"completed", "failed", "filtered", "cancelled"})
TERMINAL_EVENTS = frozenset(f"generation.{s}" for s in TERMINAL)


@dataclass(frozen=True)
class Generation:
    """One generation. `result` holds the URLs (`video_url`, `image_url`, `thumbnail_url`, ...)."""

    id: str
    status: str
    provider_id: str | None = None
    operation_type: str | None = None
    progress: float = 0.0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    credits: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Generation:
        names = cls.__dataclass_fields__.keys() - {"raw"}
        return cls(**{k: body[k] for k in names if body.get(k) is not None}, raw=body)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class GenerationPage:
    items: list[Generation]
    next_cursor: str | None


@dataclass(frozen=True)
class Asset:
    """An uploaded file; pass `asset.url` (`asset://<id>`) as any media parameter."""

    id: str
    content_type: str
    size: int
    sha256: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Asset:
        return cls(body["id"], body["content_type"], body["size"], body["sha256"], raw=body)

    @property
    def url(self) -> str:
        return f"asset://{self.id}"


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of a generation: `type` like `generation.progressed`, `data` the event."""

    id: str | None
    type: str
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS


class SSEDecoder:
    """Feeds lines, yields complete events (the text/event-stream format)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.event, self.id, self.data = "message", None, []

    def feed(self, line: str) -> Event | None:
        if not line:
            if not self.data:
                self._reset()
                return None
            event = Event(self.id, self.event, json.loads("\n".join(self.data)))
            self._reset()
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id":
            self.id = value
        return None
