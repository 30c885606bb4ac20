"""Uploaded assets: how parameters refer to them (`asset://<id>`) and where they are recorded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

ASSETS = "assets"  # MongoDB collection: {_id, owner, key, content_type, size, sha256, filename, created_at}
ASSET_SCHEME = "asset://"


def asset_references(params: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(parameter, asset id) for every `asset://<id>` value among the params (lists included)."""
    for name, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.startswith(ASSET_SCHEME):
                yield name, item.removeprefix(ASSET_SCHEME)
