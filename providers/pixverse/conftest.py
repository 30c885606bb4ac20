"""Fixtures of the Pixverse tests: the provider from `discover()`, its fake from `load_fake()`, over
real HTTP on loopback, and a small harness to submit and poll."""

from __future__ import annotations

import asyncio
import importlib
import shutil
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pixsim_provider_sdk import OperationType, ProviderAccount, discover
from pixsim_provider_sdk.safe_fetch import ALLOW_HOSTS_ENV, host_port
from pixsim_provider_sdk.testing.fake_http import load_fake
from pixsim_provider_sdk.testing.media import source_server

FOLDER = Path(__file__).resolve().parent
LATENCY = 0.3


@pytest.fixture(scope="session")
def providers_dir(tmp_path_factory) -> Path:
    """The providers folder to discover: the real one, or (while this folder is a `_wip`, which
    discovery skips) a copy holding it as `pixverse`."""
    if not FOLDER.name.startswith("_"):
        return FOLDER.parent
    root = tmp_path_factory.mktemp("providers")
    shutil.copytree(
        FOLDER, root / "pixverse", ignore=shutil.ignore_patterns("__pycache__", "test_*", "conftest.py")
    )
    return root


@pytest.fixture
def provider(providers_dir):
    return discover(providers_dir, include_entry_points=False).get("pixverse")


@pytest.fixture
def internal(provider):
    """One of the folder's own modules (status, pricing, ...), as discovery imported it."""
    package = type(provider).__module__.rsplit(".", 1)[0]
    return lambda name: importlib.import_module(f"{package}.{name}")


@pytest.fixture
def fake_factory():
    return load_fake(FOLDER)


@pytest.fixture
def start_fake(fake_factory, monkeypatch):
    started = []

    def start(**knobs):
        fake = fake_factory(**{"latency": LATENCY, **knobs})
        fake.start()
        started.append(fake)
        # Its media may be another fake's foreign source: let resolve_source fetch from it.
        monkeypatch.setenv(ALLOW_HOSTS_ENV, host_port(fake.url), prepend=",")
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
async def connect(provider, monkeypatch):
    """Point the provider at a URL; its cached HTTP client is dropped so it is rebuilt for it."""

    async def connect_to(url: str):
        monkeypatch.setenv("PIXSIM_PIXVERSE_BASE_URL", url)
        await provider.aclose()
        return provider

    yield connect_to
    await provider.aclose()


@pytest.fixture
def sources():
    """A CDN on loopback that resolve_source may fetch from: `sources.add("a.png", data)` -> its URL."""
    with source_server() as server:
        yield server


@dataclass
class Harness:
    """The provider connected to one fake, with an account made from the fake's capture."""

    provider: Any
    fake: Any
    account: ProviderAccount

    async def submit(self, op: OperationType = OperationType.TEXT_TO_VIDEO, account=None, **params):
        if op is not OperationType.VIDEO_TRANSITION:
            params = {"prompt": "a red fox in the snow", **params}
        mapped = self.provider.map_parameters(op, params)
        return await self.provider.execute(op, account or self.account, mapped)

    async def wait(self, job_id: str, op: OperationType = OperationType.TEXT_TO_VIDEO, timeout: float = 10.0):
        """Poll until terminal; return (final status, every status seen)."""
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = await self.provider.check_status(self.account, job_id, op)
            seen.append(status)
            if status.status.is_terminal:
                return status, seen
            await asyncio.sleep(0.03)
        raise AssertionError(f"{job_id} did not finish: {seen[-1] if seen else None}")

    async def image(self, **params) -> str:
        """The URL of a finished text_to_image result (Pixverse-hosted media)."""
        job = await self.submit(OperationType.TEXT_TO_IMAGE, **params)
        return (await self.wait(job.provider_job_id, OperationType.TEXT_TO_IMAGE))[0].image_url

    def sent(self, path_part: str) -> list:
        return [r for r in self.fake.requests if r.method == "POST" and path_part in r.path]


async def account_of(provider, raw_data: dict, account_id: str = "acc-1") -> ProviderAccount:
    data = await provider.extract_account_data(raw_data, fallback_email="fallback@example.com")
    return ProviderAccount(
        id=account_id, provider_id="pixverse", email=data["email"], credentials=data["credentials"]
    )


@pytest.fixture
def harness(start_fake, connect):
    """`await harness(**knobs)` -> a Harness on a fresh fake started with those knobs."""

    async def make(**knobs) -> Harness:
        fake = start_fake(**knobs)
        provider = await connect(fake.url)
        return Harness(provider, fake, await account_of(provider, fake.valid_raw_data()))

    return make


@pytest.fixture
async def pv(harness) -> Harness:
    return await harness()


@pytest.fixture
def account_for():
    return account_of


@pytest.fixture
def download():
    async def get(url: str) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.get(url)

    return get


@pytest.fixture
def tiny_png() -> bytes:
    """A valid 2x2 RGB PNG, for uploads."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + b"\x10\x20\x30" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
