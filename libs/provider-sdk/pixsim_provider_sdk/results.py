"""What adapters return, and the small value types they receive."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pixsim_contracts import OperationType, ProviderStatus


@dataclass
class GenerationResult:
    """Returned by `Provider.execute`: the provider accepted the job."""

    provider_job_id: str
    status: ProviderStatus = ProviderStatus.PENDING
    video_url: str | None = None
    image_url: str | None = None
    thumbnail_url: str | None = None
    estimated_completion: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProviderStatusResult:
    """Returned by `Provider.check_status`: where the job is now."""

    status: ProviderStatus
    progress: float | None = None  # 0..1
    video_url: str | None = None
    image_url: str | None = None
    thumbnail_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    width: int | None = None
    height: int | None = None
    duration_sec: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def result_urls(self) -> dict[str, Any]:
        """The user-facing result: only the fields that are set."""
        keys = ("video_url", "image_url", "thumbnail_url", "width", "height", "duration_sec")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass(frozen=True)
class ProviderAccount:
    """The account a job runs on. `credentials` is secret: it never appears in a repr or a log."""

    id: str
    provider_id: str
    email: str | None = None
    credentials: dict[str, Any] = field(default_factory=dict, repr=False)
    is_system: bool = False

    def __repr__(self) -> str:
        return f"ProviderAccount(id={self.id!r}, provider_id={self.provider_id!r}, credentials=<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True)
class GenerationContext:
    """The generation being prepared, as `prepare_execution_params` and `compute_actual_credits` see it."""

    id: str
    provider_id: str
    operation_type: OperationType
    params: dict[str, Any]
    user_id: str | None = None
    account_id: str | None = None
