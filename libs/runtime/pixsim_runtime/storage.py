"""PixSim's own object storage (uploads and archived results), through `obstore`.

`PIXSIM_STORAGE_URL` picks the backend: `file://<dir>` (a `LocalStore`; `make run` uses
`.pixsim/storage`) or `s3://<bucket>` (an `S3Store`; `PIXSIM_S3_ENDPOINT` for S3-compatible servers,
credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`). Objects are written whole or not at
all (a local temp file renamed into place, an S3 multipart upload completed at the end), so a crash
mid-write never leaves a partial object under its key; writing the same key again replaces it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore, S3Store
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StorageSettings(BaseSettings):
    """Mixed into the settings of every service that reads or writes stored objects."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    storage_url: str = Field(
        default="file://.pixsim/storage",
        alias="PIXSIM_STORAGE_URL",
        description="file://<dir> or s3://<bucket>",
    )
    s3_endpoint: str | None = Field(
        default=None,
        alias="PIXSIM_S3_ENDPOINT",
        description="An S3-compatible server (MinIO, R2, ...); unset for AWS",
    )
    s3_region: str = Field(default="us-east-1", alias="PIXSIM_S3_REGION")
    s3_access_key_id: str | None = Field(default=None, alias="AWS_ACCESS_KEY_ID")
    s3_secret_access_key: str | None = Field(default=None, alias="AWS_SECRET_ACCESS_KEY", repr=False)
    storage_presign_s: float = Field(
        default=900.0,
        ge=0,
        alias="PIXSIM_STORAGE_PRESIGN",
        description="S3: /content redirects to a URL presigned for this long (0: serve the bytes through the API)",
    )
    upload_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024, alias="PIXSIM_UPLOAD_MAX_BYTES")
    result_max_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024, alias="PIXSIM_RESULT_MAX_BYTES")
    result_retention_days: float = Field(
        default=0.0,
        ge=0,
        alias="PIXSIM_RESULT_RETENTION_DAYS",
        description="Archived results (and uploads) older than this are deleted; 0 keeps them",
    )


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str
    content_type: str


class TooLarge(ValueError):
    """More bytes than the cap allows."""


class Storage:
    def __init__(self, store: Any, *, is_s3: bool, presign_s: float = 0.0) -> None:
        self.store = store
        self.is_s3 = is_s3
        self.presign_s = presign_s

    @classmethod
    def from_settings(cls, s: StorageSettings) -> Storage:
        url = s.storage_url
        if url.startswith("file://"):
            root = Path(url.removeprefix("file://")).expanduser().resolve()
            root.mkdir(parents=True, exist_ok=True)
            return cls(LocalStore(root), is_s3=False)
        if url.startswith("s3://"):
            bucket = url.removeprefix("s3://").strip("/")
            config: dict[str, Any] = {"region": s.s3_region}
            if s.s3_endpoint:
                config["endpoint"] = s.s3_endpoint
            if s.s3_access_key_id and s.s3_secret_access_key:
                config.update(access_key_id=s.s3_access_key_id, secret_access_key=s.s3_secret_access_key)
            options = {"allow_http": True} if (s.s3_endpoint or "").startswith("http://") else {}
            return cls(
                S3Store(bucket, client_options=options, **config), is_s3=True, presign_s=s.storage_presign_s
            )
        raise ValueError(f"PIXSIM_STORAGE_URL must be file://<dir> or s3://<bucket>, not {url!r}")

    async def put(self, key: str, chunks: AsyncIterable[bytes], content_type: str, max_bytes: int) -> Stored:
        """Stream `chunks` to `key` (never whole in memory); its size and sha256. Raises `TooLarge` past
        `max_bytes` (then nothing is stored)."""
        digest, size = hashlib.sha256(), 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"more than {max_bytes} bytes")
                digest.update(chunk)
                yield chunk

        # The local filesystem keeps no attributes; the content type is recorded in MongoDB either way.
        attributes = {"Content-Type": content_type} if self.is_s3 else None
        await obstore.put_async(self.store, key, counted(), attributes=attributes, mode="overwrite")
        return Stored(key, size, digest.hexdigest(), content_type)

    async def size(self, key: str) -> int | None:
        try:
            return int((await obstore.head_async(self.store, key))["size"])
        except (NotFoundError, FileNotFoundError):
            return None

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes of `key` from `start` up to `end` (exclusive), in chunks."""
        options: dict[str, Any] = {}
        if start or end is not None:
            options["range"] = (start, end) if end is not None else {"offset": start}
        result = await obstore.get_async(self.store, key, options=options or None)
        async for chunk in result.stream(min_chunk_size=256 * 1024):
            yield bytes(chunk)

    async def presigned_get(self, key: str) -> str | None:
        """A presigned GET URL (S3 only, when enabled); None otherwise."""
        if not (self.is_s3 and self.presign_s):
            return None
        return await obstore.sign_async(self.store, "GET", key, timedelta(seconds=self.presign_s))

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self.store, key)
        except (NotFoundError, FileNotFoundError):
            pass
