"""Bounds of every id, string and number the HTTP API accepts (an input without one is a hole)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pixsim_contracts import limits
from pydantic import AfterValidator, Field

ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"  # generation and account ids (the event contracts use the same)
PROVIDER_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
USER_PATTERN = r"^[A-Za-z0-9_.@:|+-]{1,128}$"  # API-key owners and OIDC subjects
CREDIT_TYPE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
KEY_ID_PATTERN = r"^[0-9a-f]{16}$"
MAX_JSON_BYTES = 64 * 1024  # params of a generation, raw_data of an account
MAX_CREDITS = limits.MAX_CREDITS  # one amount of credits, as the events bound it
MAX_PRIORITY = 1000


def _small_json(value: Any) -> Any:
    size = len(json.dumps(value, separators=(",", ":"), default=str))
    if size > MAX_JSON_BYTES:
        raise ValueError(f"is {size} bytes of JSON; at most {MAX_JSON_BYTES} are accepted")
    return value


Id = Annotated[str, Field(pattern=ID_PATTERN, description="1-128 of A-Z a-z 0-9 _ -")]
ProviderId = Annotated[str, Field(pattern=PROVIDER_PATTERN)]
UserId = Annotated[str, Field(pattern=USER_PATTERN)]
CreditType = Annotated[str, Field(pattern=CREDIT_TYPE_PATTERN)]
Priority = Annotated[int, Field(strict=True, ge=-MAX_PRIORITY, le=MAX_PRIORITY, description="Higher first")]
Credits = Annotated[int, Field(strict=True, ge=0, le=MAX_CREDITS)]
Count = Annotated[int, Field(strict=True, ge=1, le=1000)]  # e.g. concurrency limits
JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(_small_json),
    Field(description=f"A JSON object of at most {MAX_JSON_BYTES} bytes"),
]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]{1,189}$")]
Cursor = Annotated[str, Field(max_length=512, pattern=r"^[A-Za-z0-9_=-]+$")]
Text = Annotated[str, Field(max_length=200)]
