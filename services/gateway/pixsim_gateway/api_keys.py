"""PixSim API keys: `psk_<key id>_<secret>`, stored only as a SHA-256 hash, checked in constant time.

The key id is public (it names the key in lists and logs); the secret is 256 random bits, so a fast
hash is enough: nobody can brute-force a 256-bit preimage, and the hash alone opens nothing.
A key document: `{_id: key id, hash, owner, role, name, created_at, last_used_at, revoked_at, expires_at,
limits}`
(times as epoch seconds: nx-27017 mangles `$set` datetimes, see pixsim_runtime.accounts).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from pixsim_runtime.group_commit import SharedReads
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

KEYS = "api_keys"
PREFIX = "psk_"
TOKEN_PATTERN = re.compile(r"^psk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
LAST_USED_EVERY_S = 60.0  # last_used_at is written at most this often per key: no write per request

Role = Literal["admin", "user"]


@dataclass(frozen=True)
class NewKey:
    key_id: str
    token: str  # shown once, never stored


def new_token() -> NewKey:
    key_id = secrets.token_hex(8)
    return NewKey(key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}")


def key_id_of(token: str) -> str | None:
    match = TOKEN_PATTERN.match(token)
    return match.group(1) if match else None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_document(
    key: NewKey,
    *,
    owner: str,
    role: Role,
    name: str,
    limits: dict[str, float] | None = None,
    expires_at: float | None = None,
) -> dict[str, Any]:
    return {
        "_id": key.key_id,
        "hash": digest(key.token),
        "owner": owner,
        "role": role,
        "name": name,
        "created_at": time.time(),
        "last_used_at": None,
        "revoked_at": None,
        "expires_at": expires_at,
        "limits": limits or {},
    }


async def verify(keys: SharedReads, token: str) -> dict[str, Any] | None:
    """The key document of a valid, unrevoked token, or None. Read for each request (never cached: a
    revoked key stops working at once, on every replica), but the requests of one moment share the read."""
    key_id = key_id_of(token)
    if key_id is None:
        return None
    doc = await keys.get(key_id)
    now = time.time()
    if doc is None or not hmac.compare_digest(doc["hash"], digest(token)) or doc.get("revoked_at"):
        return None
    if doc.get("expires_at") is not None and doc["expires_at"] <= now:
        return None
    if (doc.get("last_used_at") or 0) < now - LAST_USED_EVERY_S:
        await keys.collection.update_one({"_id": key_id}, {"$set": {"last_used_at": now}})
    return doc


async def ensure_bootstrap_key(db: AsyncDatabase, token: str, owner: str = "admin") -> None:
    """Store the operator's bootstrap admin key (from the environment) if it is not stored yet."""
    key_id = key_id_of(token)
    if key_id is None:
        raise ValueError(
            "PIXSIM_BOOTSTRAP_ADMIN_KEY is not a PixSim key (psk_<16 hex>_<43 chars>); "
            "create one with: python -m pixsim_gateway.api_keys"
        )
    doc = key_document(NewKey(key_id, token), owner=owner, role="admin", name="bootstrap")
    try:
        await db[KEYS].insert_one(doc)
    except DuplicateKeyError:
        pass  # stored before (or revoked on purpose: a revoked bootstrap key stays revoked)


if __name__ == "__main__":  # prints a fresh key, e.g. for the Kubernetes Secret
    print(new_token().token)
