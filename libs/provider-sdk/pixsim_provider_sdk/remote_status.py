"""Reading a provider's job status: its status words through the adapter's table, its progress as 0..1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pixsim_contracts import ProviderStatus

from .errors import ProviderError


def status_of(
    provider_id: str, table: Mapping[Any, ProviderStatus], remote: Any, what: str = "job"
) -> ProviderStatus:
    """`table[remote]`; a status the table does not know is `provider_bad_response` (the adapter is behind
    the API: polling again will not help), named in the message."""
    status = table.get(remote)
    if status is None:
        raise ProviderError(
            f"{provider_id}: unknown {what} status {remote!r}", error_code="provider_bad_response"
        )
    return status


def percent_progress(value: Any, default: float | None = None) -> float | None:
    """A 0..100 progress number as 0..1 (clamped); `default` when it is not a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(0.0, min(100.0, float(value))) / 100
    return default
