"""Provider-facing public types: the manifest, kinds, statuses and operations."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ProviderKind(StrEnum):
    VIDEO = "video"
    IMAGE = "image"
    BOTH = "both"
    LLM = "llm"
    EMBEDDING = "embedding"


class ProviderStatus(StrEnum):
    """Status of a job as the provider reports it, after the adapter's mapping."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    FILTERED = "filtered"  # rejected by the provider's content policy
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_PROVIDER_STATUSES


TERMINAL_PROVIDER_STATUSES = frozenset(
    {ProviderStatus.COMPLETED, ProviderStatus.FAILED, ProviderStatus.FILTERED, ProviderStatus.CANCELLED}
)


class OperationType(StrEnum):
    TEXT_TO_IMAGE = "text_to_image"
    IMAGE_TO_IMAGE = "image_to_image"
    TEXT_TO_VIDEO = "text_to_video"
    IMAGE_TO_VIDEO = "image_to_video"
    VIDEO_EXTEND = "video_extend"
    VIDEO_TRANSITION = "video_transition"
    VIDEO_MODIFY = "video_modify"
    FUSION = "fusion"
    IMAGE_EDIT = "image_edit"
    IMAGE_COMPOSITE = "image_composite"


class CallRates(BaseModel):
    """How often PixSim may call a provider's API, in calls per second shared by every replica (GCRA with
    `burst`). `submit` counts `execute`; `status` counts `check_status` and `find_job`. 0 means no limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    submit_per_s: float = Field(
        default=0.0, ge=0, le=10_000, description="Submits per second, whole provider"
    )
    status_per_s: float = Field(
        default=0.0, ge=0, le=10_000, description="Status calls per second, whole provider"
    )
    account_submit_per_s: float = Field(
        default=0.0, ge=0, le=10_000, description="Submits per second, per account"
    )
    account_status_per_s: float = Field(
        default=0.0, ge=0, le=10_000, description="Status calls per second, per account"
    )
    burst: int = Field(default=1, ge=1, le=1000, description="Calls admitted at once after a quiet spell")


class ProviderManifest(BaseModel):
    """What a provider declares about itself; the single source of truth for billing, detection and the UI."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="Registry key, e.g. `pixverse`")
    name: str = Field(description="Display name")
    version: str = Field(description="Version of the adapter (semver)")
    description: str = Field(default="", description="One line on what the provider does")
    author: str = Field(default="", description="Who maintains the adapter")
    kind: ProviderKind = Field(description="What the provider generates")
    enabled: bool = Field(default=True, description="A disabled provider is skipped at discovery")
    requires_credentials: bool = Field(
        default=True, description="False: jobs run on a built-in system account, no user account needed"
    )
    domains: list[str] = Field(default_factory=list, description="Hosts used for URL detection")
    credit_types: list[str] = Field(
        default_factory=lambda: ["web"], description="The only credit types billing accepts for this provider"
    )
    status_mapping_notes: str | None = Field(
        default=None, description="How raw provider codes map to statuses"
    )
    rate_limits: CallRates = Field(
        default_factory=CallRates,
        description="Calls per second the provider allows; `PIXSIM_<ID>_RATE_LIMITS` (JSON) overrides fields",
    )

    @field_validator("credit_types")
    @classmethod
    def _credit_types_are_subject_tokens(cls, value: list[str]) -> list[str]:
        # Credit types become a NATS subject token (pixsim.credits.<credit_type>.<event>).
        for credit_type in value:
            if not credit_type or any(c in credit_type for c in ".*> \t"):
                raise ValueError(
                    f"credit type {credit_type!r} must be a plain token (no '.', '*', '>' or spaces)"
                )
        return value
