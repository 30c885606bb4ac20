"""Reading one resource for a caller: theirs, or any for an admin."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from ..auth import Principal
from ..errors import ApiError


async def find_owned(
    collection: AsyncCollection, doc_id: str, principal: Principal, *, owner_field: str, code: str, noun: str
) -> dict[str, Any]:
    """The document if the caller may see it; otherwise 404 `code`, the same as for a missing one, so no
    caller learns that somebody else's id exists."""
    doc = await collection.find_one({"_id": doc_id})
    if doc is None or not principal.owns(doc.get(owner_field)):
        raise ApiError(404, code, f"no {noun} with id {doc_id!r}")
    return doc
