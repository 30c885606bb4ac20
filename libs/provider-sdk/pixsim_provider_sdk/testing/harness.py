"""A provider's own tests: its adapter, loaded as the services load it, against fakes of its own.

    kit = kit_fixture(Path(__file__).parent)   # a pytest fixture: a fresh ProviderKit per test

    async def test_something(kit):
        provider = await kit.connect(kit.start_fake(quota=0).url)
        account = await kit.account(kit.fakes[-1].valid_raw_data())
        result = await submit(provider, account, OperationType.TEXT_TO_IMAGE, {"prompt": "x"})
        final, seen = await wait_terminal(provider, account, result.provider_job_id)

Unlike a conformance case (`cases.py`), which loads the folder privately and configures `base_url`, a kit
gets the provider from `discover()` and points it at a fake through `PIXSIM_<ID>_BASE_URL`: the path the
services take. A folder whose name starts with `_` (work in progress, which discovery skips) is copied to a
temporary providers folder under its manifest id.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import tempfile
import time
import types
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pixsim_contracts import OperationType

from ..base import Provider
from ..files import cleanup_temp_paths, map_and_prepare, resolve_source
from ..registry import discover
from ..results import GenerationContext, GenerationResult, ProviderAccount, ProviderStatusResult
from ..safe_fetch import ALLOW_HOSTS_ENV, allow_in_env
from .fake_http import JsonFakeServer, load_fake, provider_id_of

#: What a proxy or gateway in front of any API may answer a submit with, and whether the job may exist
#: anyway (`maybe_accepted`): a 5xx other than 503 can come after the app made the job, a 503 comes from
#: an overloaded front before it, and a 2xx that is not JSON was the app's own answer, unreadable.
GATEWAY_ANSWERS: list[tuple[int, bytes, bool]] = [
    (500, b"<html>500 Internal Server Error</html>", True),
    (502, b"<html>502 Bad Gateway</html>", True),
    (504, b"<html>504 Gateway Time-out</html>", True),
    (503, b"<html>503 Service Temporarily Unavailable</html>", False),
    (200, b"<html>not json</html>", True),
]


def load_provider(folder: str | os.PathLike[str]) -> Provider:
    """The provider of a folder, from `discover()` of its parent, as the services load it. A folder whose
    name starts with `_` (work in progress, which discovery skips) is loaded from a temporary copy under
    its manifest id."""
    folder = Path(folder).resolve()
    providers_dir, name = folder.parent, folder.name
    if name.startswith("_"):
        name = provider_id_of(folder)
        providers_dir = Path(tempfile.mkdtemp(prefix="pixsim-wip-"))
        shutil.copytree(
            folder,
            providers_dir / name,
            ignore=shutil.ignore_patterns("__pycache__", "test_*", "conftest.py"),
        )
    registry = discover(providers_dir, include_entry_points=False)
    (item,) = [i for i in registry if Path(i.origin).name == name]
    return item.provider


def module_of(provider: Provider, name: str) -> types.ModuleType:
    """A module of a provider folder (`errors`, `status`, ...) as discovery imported it with the provider."""
    return importlib.import_module(f"{type(provider).__module__.rsplit('.', 1)[0]}.{name}")


class ProviderKit:
    """One provider folder under test: `provider` (from `discover()`), and the fakes `start_fake` started.
    `close()` stops the fakes, closes the provider and restores the environment it changed."""

    def __init__(
        self, folder: str | os.PathLike[str], *, latency: float = 0.3, fake_sources: bool = False
    ) -> None:
        """`latency`: the default `latency` knob of every fake. `fake_sources`: the fakes' URLs may be fetched
        by `resolve_source` (their results are sources of later jobs)."""
        self.folder = Path(folder).resolve()
        self.latency = latency
        self.fake_sources = fake_sources
        self.fakes: list[JsonFakeServer] = []
        self._saved_env: dict[str, str | None] = {}
        self.provider = load_provider(self.folder)
        self._create_fake = load_fake(self.folder)

    def module(self, name: str) -> types.ModuleType:
        """One of the folder's modules (`errors`, `status`, ...) as discovery imported it."""
        return module_of(self.provider, name)

    def start_fake(self, **knobs: Any) -> Any:
        """A new fake of the folder, started on loopback (the kit's latency unless `knobs` say)."""
        fake = self._create_fake(**{"latency": self.latency, **knobs})
        fake.start()
        self.fakes.append(fake)
        if self.fake_sources:
            self._set_env(ALLOW_HOSTS_ENV, lambda env: allow_in_env(fake.url, env))
        return fake

    async def connect(self, url: str) -> Provider:
        """Point the provider at `url` (`PIXSIM_<ID>_BASE_URL`); its client, bound to the old URL, is dropped."""
        name = f"PIXSIM_{self.provider.provider_id.upper().replace('-', '_')}_BASE_URL"
        self._set_env(name, lambda env: env.__setitem__(name, url))
        await self.provider.aclose()
        return self.provider

    async def connected(self, **knobs: Any) -> tuple[Provider, Any]:
        """A new fake with `knobs`, and the provider pointed at it."""
        fake = self.start_fake(**knobs)
        return await self.connect(fake.url), fake

    async def account(
        self, raw_data: dict[str, Any], account_id: str = "acc-1", *, fallback_email: str | None = None
    ) -> ProviderAccount:
        """The account `extract_account_data` makes of a capture, as the gateway stores it."""
        data = await self.provider.extract_account_data(raw_data, fallback_email=fallback_email)
        return ProviderAccount(
            id=account_id,
            provider_id=self.provider.provider_id,
            email=data["email"],
            credentials=data["credentials"],
        )

    def _set_env(self, name: str, change: Any) -> None:
        self._saved_env.setdefault(name, os.environ.get(name))
        change(os.environ)

    async def close(self) -> None:
        for fake in self.fakes:
            fake.stop()
        await self.provider.aclose()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@asynccontextmanager
async def provider_kit(folder: str | os.PathLike[str], **options: Any) -> AsyncIterator[ProviderKit]:
    """A `ProviderKit` for `folder`, closed when the block ends (options: see `ProviderKit`)."""
    kit = ProviderKit(folder, **options)
    try:
        yield kit
    finally:
        await kit.close()


def kit_fixture(folder: str | os.PathLike[str], **options: Any) -> Any:
    """A pytest fixture yielding a fresh `ProviderKit` of `folder` per test; assign it to a name in a test
    module (`kit = kit_fixture(FOLDER)`) or a conftest."""
    import pytest  # the SDK's `testing` extra; only the fixture needs it

    @pytest.fixture
    async def kit() -> AsyncIterator[ProviderKit]:
        async with provider_kit(folder, **options) as opened:
            yield opened

    return kit


async def submit(
    provider: Provider, account: ProviderAccount, op: OperationType, params: dict[str, Any]
) -> GenerationResult:
    """Map canonical params and execute them (no file preparation: the adapter fetches sources itself)."""
    return await provider.execute(op, account, provider.map_parameters(op, params))


def generation_for(
    provider: Provider,
    op: OperationType,
    params: dict[str, Any],
    *,
    generation_id: str = "gen-1",
    user_id: str | None = "user-1",
    account_id: str | None = None,
) -> GenerationContext:
    """The `GenerationContext` the dispatcher hands `prepare_execution_params` for these canonical params."""
    return GenerationContext(
        id=generation_id,
        provider_id=provider.provider_id,
        operation_type=op,
        params=params,
        user_id=user_id,
        account_id=account_id,
    )


async def run_prepared(
    provider: Provider,
    account: ProviderAccount,
    op: OperationType,
    params: dict[str, Any],
    *,
    resolve_source_fn: Any = resolve_source,
) -> tuple[GenerationResult, dict[str, Any]]:
    """The dispatcher's path for one job: map, prepare (fetch sources with `resolve_source_fn`), execute, then
    delete the prepared files whatever happened. Returns the result and the prepared params."""
    generation = generation_for(provider, op, params, account_id=account.id)
    prepared = await map_and_prepare(provider, generation, resolve_source_fn)
    try:
        return await provider.execute(op, account, prepared), prepared
    finally:
        cleanup_temp_paths(prepared.get("_temp_paths"))


async def wait_terminal(
    provider: Provider,
    account: ProviderAccount,
    job_id: str,
    op: OperationType | None = None,
    timeout: float = 10.0,
) -> tuple[ProviderStatusResult, list[ProviderStatusResult]]:
    """Poll until a terminal status; return it and every status seen."""
    return await wait_until(provider, account, job_id, op, lambda status: status.status.is_terminal, timeout)


async def wait_until(
    provider: Provider,
    account: ProviderAccount,
    job_id: str,
    op: OperationType | None,
    until: Callable[[ProviderStatusResult], bool],
    timeout: float = 10.0,
) -> tuple[ProviderStatusResult, list[ProviderStatusResult]]:
    """Poll until `until(status)`; return that status and every status seen."""
    seen: list[ProviderStatusResult] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await provider.check_status(account, job_id, op)
        seen.append(status)
        if until(status):
            return status, seen
        await asyncio.sleep(0.03)
    raise AssertionError(f"{job_id}: not there in {timeout}s; last {seen[-1] if seen else None}")
