"""Opaque page cursors: `base64url(JSON [kind, value])`. The kind stops a cursor of one list from being
replayed on another; anything this API did not hand out answers 400 `invalid_cursor`."""

from __future__ import annotations

import base64
import json
from typing import Any

from ..errors import ApiError


def encode(kind: str, value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([kind, value]).encode()).decode()


def decode(kind: str, cursor: str, expected: type | tuple[type, ...]) -> Any:
    """The value of a cursor of this `kind`, which must be an instance of `expected`."""
    try:
        tag, value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if tag == kind and isinstance(value, expected) and not isinstance(value, bool):
            return value
    except (ValueError, TypeError):
        pass
    raise ApiError(400, "invalid_cursor", "the cursor is not one this API returned")
