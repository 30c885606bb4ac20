"""PixSim wire contracts: events, subjects, stream names and the provider manifest."""

from __future__ import annotations

import json
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from . import subjects
from .accounts import (
    AccountCreated,
    AccountCreditsLow,
    AccountDeleted,
    AccountEvent,
    AccountExhausted,
    AccountStatusChanged,
    AccountUpdated,
)
from .credits import (
    CreditEvent,
    CreditsCharged,
    CreditsGranted,
    CreditsReleased,
    CreditsReserved,
    CreditsSynced,
)
from .envelope import Event, new_id, utc_now
from .generations import (
    TERMINAL_GENERATION_EVENTS,
    ErrorInfo,
    GenerationCancelled,
    GenerationCancelRequested,
    GenerationCompleted,
    GenerationEvent,
    GenerationFailed,
    GenerationFiltered,
    GenerationProgressed,
    GenerationRequested,
    GenerationSubmitted,
)
from .providers import CallRates, OperationType, ProviderKind, ProviderManifest, ProviderStatus

GENERATION_EVENT_TYPES = (
    GenerationRequested,
    GenerationSubmitted,
    GenerationProgressed,
    GenerationCompleted,
    GenerationFailed,
    GenerationFiltered,
    GenerationCancelRequested,
    GenerationCancelled,
)
CREDIT_EVENT_TYPES = (CreditsReserved, CreditsCharged, CreditsReleased, CreditsGranted, CreditsSynced)
ACCOUNT_EVENT_TYPES = (
    AccountCreated,
    AccountUpdated,
    AccountDeleted,
    AccountCreditsLow,
    AccountExhausted,
    AccountStatusChanged,
)
ALL_EVENT_TYPES = GENERATION_EVENT_TYPES + CREDIT_EVENT_TYPES + ACCOUNT_EVENT_TYPES


def _union(types: tuple[type[Event], ...]) -> TypeAdapter[Any]:
    return TypeAdapter(Annotated[Union[types], Field(discriminator="type")])  # noqa: UP007


AnyGenerationEvent = _union(GENERATION_EVENT_TYPES)
AnyCreditEvent = _union(CREDIT_EVENT_TYPES)
AnyAccountEvent = _union(ACCOUNT_EVENT_TYPES)
AnyEvent = _union(ALL_EVENT_TYPES)


def json_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per event type, keyed by the event's `type`."""
    return {t.model_fields["type"].default: t.model_json_schema() for t in ALL_EVENT_TYPES}


def main() -> None:  # pragma: no cover - `python -m pixsim_contracts` prints the schemas
    print(json.dumps(json_schemas(), indent=2))


__all__ = [
    "ACCOUNT_EVENT_TYPES",
    "ALL_EVENT_TYPES",
    "CREDIT_EVENT_TYPES",
    "GENERATION_EVENT_TYPES",
    "TERMINAL_GENERATION_EVENTS",
    "AccountCreated",
    "AccountCreditsLow",
    "AccountDeleted",
    "AccountEvent",
    "AccountExhausted",
    "AccountStatusChanged",
    "AccountUpdated",
    "AnyAccountEvent",
    "AnyCreditEvent",
    "AnyEvent",
    "AnyGenerationEvent",
    "CallRates",
    "CreditEvent",
    "CreditsCharged",
    "CreditsGranted",
    "CreditsReleased",
    "CreditsReserved",
    "CreditsSynced",
    "ErrorInfo",
    "Event",
    "GenerationCancelRequested",
    "GenerationCancelled",
    "GenerationCompleted",
    "GenerationEvent",
    "GenerationFailed",
    "GenerationFiltered",
    "GenerationProgressed",
    "GenerationRequested",
    "GenerationSubmitted",
    "OperationType",
    "ProviderKind",
    "ProviderManifest",
    "ProviderStatus",
    "json_schemas",
    "new_id",
    "subjects",
    "utc_now",
]
