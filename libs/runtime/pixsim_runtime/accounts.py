"""Provider accounts as the dispatcher and poller read them (the gateway writes them).

Collection `accounts`, keyed by the account id. Credentials are stored encrypted
(`pixsim_runtime.secrets`) and only decrypted into a `ProviderAccount` right before a provider call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from pixsim_contracts import ProviderManifest
from pixsim_provider_sdk import ProviderAccount

from .secrets import CredentialCipher

ACCOUNTS = "accounts"


def system_account_id(provider_id: str) -> str:
    return f"system-{provider_id}"


def system_account(manifest: ProviderManifest) -> ProviderAccount:
    """The built-in account of a provider that needs no credentials."""
    return ProviderAccount(id=system_account_id(manifest.id), provider_id=manifest.id, is_system=True)


def to_provider_account(doc: dict[str, Any], cipher: CredentialCipher) -> ProviderAccount:
    return ProviderAccount(
        id=doc["_id"],
        provider_id=doc["provider_id"],
        email=doc.get("email"),
        credentials=cipher.decrypt(doc["credentials"]) if doc.get("credentials") else {},
    )


async def load_account(
    db: AsyncDatabase, manifest: ProviderManifest, account_id: str, cipher: CredentialCipher
) -> ProviderAccount | None:
    """The account a job runs or ran on, or None if it no longer exists."""
    if account_id == system_account_id(manifest.id):
        return system_account(manifest)
    doc = await db[ACCOUNTS].find_one({"_id": account_id, "provider_id": manifest.id})
    return to_provider_account(doc, cipher) if doc else None


async def pick_account(
    db: AsyncDatabase, manifest: ProviderManifest, cipher: CredentialCipher, pinned: str | None = None
) -> ProviderAccount | None:
    """An active account of the provider: the pinned one, else highest priority, then least recently used.

    Providers with `requires_credentials=False` use their system account unless a job pins another.
    """
    if pinned is None and not manifest.requires_credentials:
        return system_account(manifest)
    query: dict[str, Any] = {"provider_id": manifest.id, "status": "active", "enabled": True}
    if pinned is not None:
        if pinned == system_account_id(manifest.id) and not manifest.requires_credentials:
            return system_account(manifest)
        query["_id"] = pinned
    # Stamping last_used_at in the same atomic write rotates load across accounts and replicas.
    doc = await db[ACCOUNTS].find_one_and_update(
        query,
        {"$set": {"last_used_at": datetime.now(UTC)}},
        sort=[("priority", -1), ("last_used_at", 1)],
        return_document=ReturnDocument.AFTER,
    )
    return to_provider_account(doc, cipher) if doc else None
