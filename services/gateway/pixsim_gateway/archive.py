"""The archiver: a completed generation's result and thumbnail are copied into PixSim's storage, so the
user's paid-for output outlives the provider's URL (expiring signatures, deleted accounts).

It runs as the durable consumer `gateway-archiver` on `generation.completed`, inside the gateway: the
gateway owns the read model the copy is recorded beside, serves the copies (`/content`), and already
holds the storage, the registry and the credential cipher (for providers whose results need the
account, like Sora). Replicas share the consumer, so adding gateways adds archivers.

A copy is at-least-once and idempotent: an object is written whole or not at all under a key derived
from the generation, its record (`archives`, keyed by the generation id) is written after it, and a
redelivery skips what is recorded. A failing copy leaves the generation `completed` with the provider's
URL and an `archive_error`, and is retried with backoff for `PIXSIM_ARCHIVE_RETRY_FOR` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pixsim_contracts import GenerationCompleted
from pixsim_provider_sdk import Provider, ProviderError, ProviderNotFoundError, SourceRejected
from pixsim_provider_sdk.safe_fetch import FetchPolicy, fetch_source
from pixsim_runtime.accounts import load_account
from pixsim_runtime.backoff import backoff
from pixsim_runtime.consumers import PollAgain
from pixsim_runtime.group_commit import BulkWriter
from pixsim_runtime.service import ServiceContext
from pixsim_runtime.sniff import SNIFF_BYTES, a_kind, family, sniff
from pixsim_runtime.storage import Storage, TooLarge

from .projections import GENERATIONS

log = logging.getLogger(__name__)

ARCHIVES = "archives"
#: The result fields each variant is copied from, first present wins.
VARIANTS = {"result": ("video_url", "image_url", "audio_url"), "thumbnail": ("thumbnail_url",)}
_FAMILY = {"video_url": "video", "image_url": "image", "audio_url": "audio", "thumbnail_url": "image"}
CHUNK = 1024 * 1024


class ArchiveFailed(Exception):
    pass


def sources(result: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(variant, url, expected family) for every variant the result has."""
    found = []
    for variant, fields in VARIANTS.items():
        for name in fields:
            if isinstance(url := (result or {}).get(name), str) and url:
                found.append((variant, url, _FAMILY[name]))
                break
    return found


async def file_chunks(path: str) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk
    finally:
        f.close()


def read_head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(SNIFF_BYTES)


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Archiver:
    def __init__(
        self,
        ctx: ServiceContext,
        storage: Storage,
        cipher: Any,
        *,
        max_bytes: int,
        retention_days: float,
        retry_s: float,
        retry_max_s: float,
        retry_for_s: float,
    ) -> None:
        self.ctx = ctx
        self.archives = ctx.db[ARCHIVES]
        # The records of the archives running at once go in one write (`batch_size` of the consumer)
        self.writes = BulkWriter(self.archives)
        self.storage = storage
        self.cipher = cipher
        self.max_bytes = max_bytes
        self.retention = timedelta(days=retention_days) if retention_days else None
        self.retry_s, self.retry_max_s, self.retry_for_s = retry_s, retry_max_s, retry_for_s
        self.last_sweep = datetime.min.replace(tzinfo=UTC)

    async def on_completed(self, event: GenerationCompleted, _msg: Any) -> None:
        delay = await self.archive(event)
        await self.sweep_if_due()
        if delay is not None:
            raise PollAgain(delay)

    async def archive(self, event: GenerationCompleted) -> float | None:
        """Copy what is not copied yet; None when done (or given up), else seconds until the next try."""
        gid, now = event.generation_id, datetime.now(UTC)
        # The first attempt is recorded without a read: the insert fails only when there is a record (a
        # retry, a redelivery), which is read then. (No $setOnInsert upsert: nx-27017 ignores it.) Records
        # are written together with those of the other archives running at the moment (`BulkWriter`).
        record = {"_id": gid, "status": "pending", "attempts": 0, "objects": {}, "first_attempt_at": now}
        if not await self.writes.insert(record):
            record = await self.archives.find_one({"_id": gid}) or record
        if record.get("status") in ("archived", "failed", "expired"):
            return None
        first = record.get("first_attempt_at") or now
        record["objects"] = dict(record.get("objects") or {})
        # copied before a crash or an earlier failure: kept
        todo = [s for s in sources(event.result) if s[0] not in record["objects"]]
        # Whole-document writes: nx-27017 stores a datetime given to $set as a string.
        try:
            for i, (variant, url, expect) in enumerate(todo):
                record["objects"][variant] = await self.copy(event, variant, url, expect)
                if i < len(todo) - 1:  # the last copy is recorded with the outcome, below
                    await self.writes.replace({"_id": gid}, record)
        except ArchiveFailed as exc:
            attempts = (record.get("attempts") or 0) + 1
            gave_up = (now - _aware(first)).total_seconds() >= self.retry_for_s
            log.warning(
                "archiving %s failed (attempt %d%s): %s", gid, attempts, ", giving up" if gave_up else "", exc
            )
            record.update(
                status="failed" if gave_up else "pending",
                attempts=attempts,
                archive_error=str(exc)[:500],
                last_attempt_at=now,
            )
            await self.writes.replace({"_id": gid}, record)
            return None if gave_up else backoff(attempts - 1, self.retry_s, self.retry_max_s)
        record.update(
            status="archived",
            archive_error=None,
            archived_at=now,
            expires_at=now + self.retention if self.retention else None,
        )
        await self.writes.replace({"_id": gid}, record)
        return None

    async def copy(self, event: GenerationCompleted, variant: str, url: str, expect: str) -> dict[str, Any]:
        fetched = await self._fetch_with_account(event, variant)
        tmp = None
        try:
            if fetched is not None:
                data, _claimed = fetched
                head, chunks = data[:SNIFF_BYTES], one_chunk(data)
            else:
                fd, tmp = tempfile.mkstemp(prefix="pixsim-archive-")
                os.close(fd)
                policy = FetchPolicy.from_env()
                policy = FetchPolicy(policy.allow_hosts, self.max_bytes, policy.timeout_s)
                await fetch_source(url, tmp, param=variant, expect=expect, policy=policy)
                head = await asyncio.to_thread(read_head, tmp)
                chunks = file_chunks(tmp)
            content_type = sniff(head)
            if content_type is None or family(content_type) != expect:
                raise ArchiveFailed(
                    f"{variant}: the content is {content_type or 'of an unknown type'}, not {a_kind(expect)}"
                )
            ext = mimetypes.guess_extension(content_type) or ""
            stored = await self.storage.put(
                f"results/{event.generation_id}/{variant}{ext}", chunks, content_type, self.max_bytes
            )
        except (SourceRejected, ProviderError) as exc:
            raise ArchiveFailed(f"{variant}: {exc}") from None
        except TooLarge:
            raise ArchiveFailed(f"{variant}: larger than {self.max_bytes} bytes") from None
        except ArchiveFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - storage errors (S3 down, no bucket) are retried like the rest
            raise ArchiveFailed(f"{variant}: storage: {type(exc).__name__}: {str(exc)[:200]}") from None
        finally:
            if tmp:
                os.unlink(tmp)
        return {
            "key": stored.key,
            "size": stored.size,
            "sha256": stored.sha256,
            "content_type": stored.content_type,
        }

    async def _fetch_with_account(self, event: GenerationCompleted, variant: str) -> tuple[bytes, str] | None:
        """The bytes from the provider itself, for providers whose result URLs need the account."""
        try:
            provider = self.ctx.registry.get(event.provider_id)
        except ProviderNotFoundError:
            return None
        if type(provider).fetch_result is Provider.fetch_result:  # public URLs: fetched safely instead
            return None
        generation = await self.ctx.db[GENERATIONS].find_one({"_id": event.generation_id})
        if not (generation and generation.get("provider_job_id")):
            raise ArchiveFailed(f"{variant}: the generation's provider job is not known yet")
        account = await load_account(self.ctx.db, provider.manifest, event.account_id, self.cipher)
        if account is None:
            return None
        try:
            return await provider.fetch_result(account, generation["provider_job_id"], variant)
        except ProviderError as exc:
            raise ArchiveFailed(f"{variant}: {event.provider_id}: {exc.message}") from None

    async def sweep_if_due(self, every_s: float = 600.0) -> None:
        now = datetime.now(UTC)
        if self.retention and (now - self.last_sweep).total_seconds() >= every_s:
            self.last_sweep = now
            await self.sweep(now)

    async def sweep(self, now: datetime) -> int:
        """Delete the stored copies whose retention has ended; the generations keep their provider URLs."""
        expired = 0
        async for record in self.archives.find({"status": "archived", "expires_at": {"$lte": now}}):
            for obj in (record.get("objects") or {}).values():
                await self.storage.delete(obj["key"])
            await self.archives.replace_one(
                {"_id": record["_id"]}, {**record, "status": "expired", "objects": {}}
            )
            expired += 1
        return expired


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def public_archive(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The generation's `archive` field in the API."""
    if record is None:
        return None
    objects = {
        v: {k: o[k] for k in ("size", "sha256", "content_type")}
        for v, o in (record.get("objects") or {}).items()
    }
    return {
        "status": record.get("status"),
        "objects": objects,
        "error": record.get("archive_error"),
        "attempts": record.get("attempts", 0),
        "archived_at": record.get("archived_at"),
        "expires_at": record.get("expires_at"),
    }
