"""The bounds every event obeys, and the strict field types that enforce them.

Events arrive from outside (upstream systems publish straight onto NATS), so a field is exactly the
type it says: numbers are never coerced from strings (`"10"` is refused where `10` is expected) nor
booleans from numbers; credit amounts are whole, non-negative and bounded; ids have a charset and a
length; free text is bounded (longer text is cut, so a long provider message never makes an event
impossible to build); JSON objects (`params`, `result`) are bounded in size and depth.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict, StringConstraints

#: The largest message the event streams accept (body and headers). A valid event is far smaller.
MAX_EVENT_MESSAGE_BYTES = 256 * 1024
#: Any credit amount, estimate or balance, in whole credits.
MAX_CREDITS = 1_000_000_000
#: `params` and `result`, as compact JSON.
MAX_OBJECT_BYTES = 64 * 1024
MAX_OBJECT_DEPTH = 16
MAX_TEXT = 2000
MAX_SHORT_TEXT = 256
MAX_CREDIT_TYPES = 32

ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
EVENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,256}$"
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]*$"

#: A generation or account id: also a NATS subject token.
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]
#: A provider id or credit type: a plain subject token.
Token = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN)]
#: An id from outside PixSim (a user, a provider's job): printable, bounded.
ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_SHORT_TEXT, pattern=PRINTABLE_PATTERN)
]
ShortText = Annotated[str, StringConstraints(max_length=MAX_SHORT_TEXT)]

Credits = Annotated[int, Strict(), Field(ge=0, le=MAX_CREDITS)]
PositiveCredits = Annotated[int, Strict(), Field(gt=0, le=MAX_CREDITS)]
SignedCredits = Annotated[int, Strict(), Field(ge=-MAX_CREDITS, le=MAX_CREDITS)]
StrictBool = Annotated[bool, Strict()]
Version = Annotated[int, Strict(), Field(ge=1, le=1000)]
Priority = Annotated[int, Strict(), Field(ge=-1_000_000, le=1_000_000)]
Fraction = Annotated[float, Strict(), Field(ge=0.0, le=1.0, allow_inf_nan=False)]
CreditMap = Annotated[dict[Token, Credits], Field(max_length=MAX_CREDIT_TYPES)]


def _cut(limit: int):
    def cut(value: Any) -> Any:
        return value[:limit] if isinstance(value, str) and len(value) > limit else value

    return cut


#: Free text for a human (reasons, messages): cut to MAX_TEXT characters.
Text = Annotated[str, BeforeValidator(_cut(MAX_TEXT)), StringConstraints(max_length=MAX_TEXT)]


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _bounded_object(value: dict[str, Any]) -> dict[str, Any]:
    if _depth(value) > MAX_OBJECT_DEPTH:
        raise ValueError(f"nested deeper than {MAX_OBJECT_DEPTH} levels")
    try:
        size = len(json.dumps(value, separators=(",", ":"), default=str).encode())
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if size > MAX_OBJECT_BYTES:
        raise ValueError(f"{size} bytes as JSON, more than {MAX_OBJECT_BYTES}")
    return value


#: A JSON object of at most MAX_OBJECT_BYTES (compact) and MAX_OBJECT_DEPTH levels.
JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded_object)]
