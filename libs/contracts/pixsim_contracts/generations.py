"""Generation events: one aggregate (a generation), one subject per event kind.

Subjects: `pixsim.generations.<generation_id>.<event>`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import subjects
from .envelope import Event
from .providers import OperationType


class ErrorInfo(BaseModel):
    """Why a generation did not complete."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(description="Stable machine-readable code, e.g. `provider_quota`, `content_filtered`")
    message: str = Field(description="What went wrong, for a human")
    retryable: bool = False


class GenerationEvent(Event):
    generation_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="The aggregate id")

    @property
    def subject(self) -> str:
        return subjects.generation(self.generation_id, self.type.split(".", 1)[1])


class GenerationRequested(GenerationEvent):
    """pixsim.generations.<generation_id>.requested: someone asked for a generation.

    Upstream systems publish this themselves, choosing `generation_id` and sending the header
    `Nats-Msg-Id: <generation_id>` so that a duplicate publish is dropped.
    """

    type: Literal["generation.requested"] = "generation.requested"
    provider_id: str
    operation_type: OperationType
    params: dict[str, Any] = Field(default_factory=dict, description="Canonical parameters (see the provider's spec)")
    account_id: str | None = Field(default=None, description="Pin the job to this account")
    user_id: str | None = None
    priority: int = 0


class GenerationSubmitted(GenerationEvent):
    """pixsim.generations.<generation_id>.submitted: the provider accepted the job."""

    type: Literal["generation.submitted"] = "generation.submitted"
    provider_id: str
    operation_type: OperationType
    account_id: str
    provider_job_id: str
    credits_reserved: dict[str, int] = Field(default_factory=dict, description="Estimate per credit type")
    deadline_at: datetime = Field(description="The poller gives up (failed, provider_timeout) after this")
    user_id: str | None = None
    params: dict[str, Any] = Field(
        default_factory=dict, description="The canonical params as submitted (defaults applied), for pricing"
    )


class GenerationProgressed(GenerationEvent):
    """pixsim.generations.<generation_id>.progressed: the provider reported new progress."""

    type: Literal["generation.progressed"] = "generation.progressed"
    progress: float = Field(ge=0.0, le=1.0)


class GenerationCompleted(GenerationEvent):
    """pixsim.generations.<generation_id>.completed: the result is ready."""

    type: Literal["generation.completed"] = "generation.completed"
    provider_id: str
    account_id: str
    result: dict[str, Any] = Field(description="`video_url` or `image_url`, plus `thumbnail_url`, sizes, ...")
    credits_charged: dict[str, int] = Field(default_factory=dict)


class GenerationFailed(GenerationEvent):
    """pixsim.generations.<generation_id>.failed: the job ended without a result."""

    type: Literal["generation.failed"] = "generation.failed"
    provider_id: str
    account_id: str | None = None
    error: ErrorInfo


class GenerationFiltered(GenerationEvent):
    """pixsim.generations.<generation_id>.filtered: the provider's content policy rejected the job."""

    type: Literal["generation.filtered"] = "generation.filtered"
    provider_id: str
    account_id: str | None = None
    error: ErrorInfo


class GenerationCancelRequested(GenerationEvent):
    """pixsim.generations.<generation_id>.cancel_requested: a user asked to stop the job."""

    type: Literal["generation.cancel_requested"] = "generation.cancel_requested"
    reason: str | None = None


class GenerationCancelled(GenerationEvent):
    """pixsim.generations.<generation_id>.cancelled: the job was stopped."""

    type: Literal["generation.cancelled"] = "generation.cancelled"
    provider_id: str
    account_id: str | None = None


TERMINAL_GENERATION_EVENTS = ("completed", "failed", "filtered", "cancelled")
