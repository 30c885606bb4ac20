"""The envelope every PixSim event carries."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from .limits import EventId, Version


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A 26-character, time-ordered id (ms timestamp + randomness), so ids sort by creation time."""
    return f"{int(time.time() * 1000):012x}{os.urandom(7).hex()}"


class Event(BaseModel):
    """Base of every event: immutable, versioned, self-describing.

    `event_id` is unique per event and doubles as the `Nats-Msg-Id` header, so JetStream drops a
    duplicate publish and every consumer can recognise a redelivery. Every field is strict and bounded
    (`pixsim_contracts.limits`); unknown fields are refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: EventId = Field(default_factory=new_id, description="Unique id of this event")
    type: str = Field(description="Event type, e.g. `generation.submitted`")
    version: Version = Field(default=1, description="Schema version of this event type")
    occurred_at: datetime = Field(default_factory=utc_now, description="When it happened (UTC)")
