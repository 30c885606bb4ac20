"""Generation events: one aggregate (a generation), one subject per event kind.

Subjects: `pixsim.generations.<generation_id>.<event>`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from . import subjects
from .envelope import Event
from .limits import (
    CreditMap,
    ExternalId,
    Fraction,
    Id,
    JsonObject,
    Priority,
    ShortText,
    StrictBool,
    Text,
    Token,
)
from .providers import OperationType


class ErrorInfo(BaseModel):
    """Why a generation did not complete."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: ShortText = Field(
        description="Stable machine-readable code, e.g. `provider_quota`, `content_filtered`"
    )
    message: Text = Field(description="What went wrong, for a human")
    retryable: StrictBool = False


class GenerationEvent(Event):
    generation_id: Id = Field(
        description="The aggregate id: `[A-Za-z0-9_-]{1,128}`, also the subject's token"
    )

    @property
    def subject(self) -> str:
        return subjects.generation(self.generation_id, self.type.split(".", 1)[1])


class GenerationRequested(GenerationEvent):
    """pixsim.generations.<generation_id>.requested: someone asked for a generation.

    Upstream systems publish this themselves, choosing `generation_id` and sending the header
    `Nats-Msg-Id: <generation_id>` so that a duplicate publish is dropped.
    """

    type: Literal["generation.requested"] = "generation.requested"
    provider_id: Token
    operation_type: OperationType
    params: JsonObject = Field(
        default_factory=dict,
        description="Canonical parameters (see the provider's spec); at most 64 KiB as JSON",
    )
    account_id: Id | None = Field(default=None, description="Pin the job to this account")
    user_id: ExternalId | None = None
    priority: Priority = 0


class GenerationSubmitted(GenerationEvent):
    """pixsim.generations.<generation_id>.submitted: the provider accepted the job."""

    type: Literal["generation.submitted"] = "generation.submitted"
    provider_id: Token
    operation_type: OperationType
    account_id: Id
    provider_job_id: ExternalId
    credits_reserved: CreditMap = Field(default_factory=dict, description="Estimate per credit type")
    deadline_at: datetime = Field(description="The poller gives up (failed, provider_timeout) after this")
    user_id: ExternalId | None = None
    params: JsonObject = Field(
        default_factory=dict, description="The canonical params as submitted (defaults applied), for pricing"
    )


class GenerationProgressed(GenerationEvent):
    """pixsim.generations.<generation_id>.progressed: the provider reported new progress."""

    type: Literal["generation.progressed"] = "generation.progressed"
    progress: Fraction


class GenerationCompleted(GenerationEvent):
    """pixsim.generations.<generation_id>.completed: the result is ready."""

    type: Literal["generation.completed"] = "generation.completed"
    provider_id: Token
    account_id: Id
    result: JsonObject = Field(description="`video_url` or `image_url`, plus `thumbnail_url`, sizes, ...")
    credits_charged: CreditMap = Field(default_factory=dict)


class GenerationFailed(GenerationEvent):
    """pixsim.generations.<generation_id>.failed: the job ended without a result."""

    type: Literal["generation.failed"] = "generation.failed"
    provider_id: Token
    account_id: Id | None = None
    error: ErrorInfo


class GenerationFiltered(GenerationEvent):
    """pixsim.generations.<generation_id>.filtered: the provider's content policy rejected the job."""

    type: Literal["generation.filtered"] = "generation.filtered"
    provider_id: Token
    account_id: Id | None = None
    error: ErrorInfo


class GenerationCancelRequested(GenerationEvent):
    """pixsim.generations.<generation_id>.cancel_requested: a user asked to stop the job."""

    type: Literal["generation.cancel_requested"] = "generation.cancel_requested"
    reason: Text | None = None


class GenerationCancelled(GenerationEvent):
    """pixsim.generations.<generation_id>.cancelled: the job was stopped."""

    type: Literal["generation.cancelled"] = "generation.cancelled"
    provider_id: Token
    account_id: Id | None = None


TERMINAL_GENERATION_EVENTS = ("completed", "failed", "filtered", "cancelled")
