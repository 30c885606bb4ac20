"""Fixtures of the Pixverse tests: the provider from `discover()`, its fake from `load_fake()`, over
real HTTP on loopback, and a small harness to submit and poll."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pixsim_provider_sdk import OperationType, ProviderAccount
from pixsim_provider_sdk.testing.fake_http import load_fake
from pixsim_provider_sdk.testing.harness import kit_fixture, load_provider, module_of, wait_terminal
from pixsim_provider_sdk.testing.media import make_png, source_server

FOLDER = Path(__file__).resolve().parent
LATENCY = 0.3
FALLBACK_EMAIL = "fallback@example.com"

kit = kit_fixture(FOLDER, latency=LATENCY, fake_sources=True)  # its media may be another job's source


@pytest.fixture
def provider():
    return load_provider(FOLDER)


@pytest.fixture
def internal(provider):
    """One of the folder's own modules (status, pricing, ...), as discovery imported it."""
    return lambda name: module_of(provider, name)


@pytest.fixture
def fake_factory():
    return load_fake(FOLDER)


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
        return await wait_terminal(self.provider, self.account, job_id, op, timeout)

    async def image(self, **params) -> str:
        """The URL of a finished text_to_image result (Pixverse-hosted media)."""
        job = await self.submit(OperationType.TEXT_TO_IMAGE, **params)
        return (await self.wait(job.provider_job_id, OperationType.TEXT_TO_IMAGE))[0].image_url

    def sent(self, path_part: str) -> list:
        return [r for r in self.fake.requests if r.method == "POST" and path_part in r.path]


@pytest.fixture
def harness(kit):
    """`await harness(**knobs)` -> a Harness on a fresh fake started with those knobs."""

    async def make(**knobs) -> Harness:
        provider, fake = await kit.connected(**knobs)
        return Harness(
            provider, fake, await kit.account(fake.valid_raw_data(), fallback_email=FALLBACK_EMAIL)
        )

    return make


@pytest.fixture
async def pv(harness) -> Harness:
    return await harness()


@pytest.fixture
def account_for(kit):
    """`await account_for(raw_data, account_id="acc-1")`: the account the gateway stores for a capture."""
    return lambda raw_data, account_id="acc-1": kit.account(
        raw_data, account_id, fallback_email=FALLBACK_EMAIL
    )


@pytest.fixture
def download():
    async def get(url: str) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.get(url)

    return get


@pytest.fixture
def tiny_png() -> bytes:
    """A valid 2x2 RGB PNG, for uploads."""
    return make_png(2, 2, "tiny")
