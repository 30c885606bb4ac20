"""A provider under test with its fake: `ConformanceCase`, and the helpers that open one.

    async with case_for_folder("providers/myprovider") as case:       # a provider folder (or package dir)
    async with case_for_package("my_pkg.manifest") as case:           # an installed provider package
    async with open_case(provider, create_fake, origin="...") as case:  # anything already loaded

Opening a case starts the provider's fake (`fake_api.create_fake`) and a small asset server on loopback
and points the provider at the fake through its `base_url` config; closing it stops both and restores
the provider's config and timeout, so a provider instance shared with other tests is left as it was.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import types
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixsim_contracts import OperationType, ProviderManifest, ProviderStatus

from ..base import Provider
from ..files import cleanup_temp_paths, map_and_prepare, resolve_source
from ..params import apply_defaults, validate_params
from ..registry import _load
from ..results import GenerationContext, GenerationResult, ProviderAccount, ProviderStatusResult
from ..safe_fetch import FetchPolicy, host_port
from .checks import TEXT_OPERATIONS, frame_size, media_fields, prompt_field, sample_params
from .fake_http import _folder_package, load_fake
from .media import AssetServer

DEFAULT_KNOBS = {"latency": 0.2}


@dataclass
class Submission:
    """What `ConformanceCase.submit` saw while preparing and executing one job."""

    result: GenerationResult
    temp_paths: list[str]  # the `_temp_paths` that prepare_execution_params returned
    resolved: list[str]  # every temp file that resolve_source_fn created for the adapter
    missing_after_prepare: list[str]  # listed temp paths that did not exist right after preparation


@dataclass
class ConformanceCase:
    """One provider, its fake, and the knobs of the run. Options are keyword arguments of the openers:

    - `fake_knobs`: default `create_fake` knobs of every fake the suite starts (default: latency 0.2 s);
    - `sample_overrides`: per operation value, params merged over the generated minimal sample;
    - `unknown_job_id`: an id the fake never issued, in the provider's id format;
    - `poll_timeout`: seconds a job may take to reach a terminal status.
    """

    provider: Provider
    create_fake: Callable[..., Any]
    origin: str
    fake_knobs: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_KNOBS))
    sample_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    unknown_job_id: str = "404404404"
    poll_timeout: float = 15.0
    fake: Any = None
    #: The latest completed result URL per media family ("video", "image") from the current fake.
    results: dict[str, str] = field(default_factory=dict)
    assets: AssetServer = field(default_factory=AssetServer)
    _saved_config: dict[str, Any] = field(default_factory=dict)
    _saved_timeout: tuple[bool, Any] = (False, None)

    @property
    def manifest(self) -> ProviderManifest:
        return self.provider.manifest

    @property
    def operations(self) -> list[OperationType]:
        """The supported operations, text ones first: their results feed operations that take media."""
        return sorted(self.provider.supported_operations, key=lambda op: op not in TEXT_OPERATIONS)

    def spec(self, op: OperationType) -> dict[str, Any]:
        return self.provider.get_operation_parameter_spec().get(op.value) or {}

    # -- the fake -----------------------------------------------------------------------------------
    async def start_fake(self, **knobs: Any) -> Any:
        """Replace the running fake with a new one (default knobs plus `knobs`); point the provider at it."""
        fake = self.create_fake(**{**self.fake_knobs, **knobs})
        fake.start("127.0.0.1", 0)
        if self.fake is not None:
            self.fake.stop()
        self.fake = fake
        self.results.clear()  # they lived on the old fake
        await self.point_at(fake.url)
        return fake

    async def point_at(self, base_url: str) -> None:
        """Send the provider's calls to `base_url` (config `base_url`; drops the client of the old URL)."""
        self.provider.config["base_url"] = base_url
        await self.provider.aclose()

    async def set_http_timeout(self, seconds: float) -> None:
        """Lower the provider's per-call timeout for this case (restored on close)."""
        self.provider.http_timeout = seconds
        await self.provider.aclose()

    # -- inputs -------------------------------------------------------------------------------------
    def media_url(self, kind: str, size: tuple[int, int] | None = None) -> str:
        """A video input is the provider's latest video result when there is one (extends and transitions
        often accept only the provider's own media), else a small MP4; an image is a PNG (of `size`)."""
        if kind == "video":
            return self.results.get("video") or self.assets.asset_url("sample.mp4")
        return self.assets.asset_url(f"sample-{size[0]}x{size[1]}.png" if size else "sample.png")

    def sample_params(self, op: OperationType, **params: Any) -> dict[str, Any]:
        """Minimal valid params from the spec, then the case's overrides, then `params`. Source images have
        the first `WxH` size the spec offers (a provider may need the frame size to match the output)."""
        spec = self.spec(op)
        size = frame_size(spec)
        return {
            **sample_params(spec, lambda kind: self.media_url(kind, size), op),
            **self.sample_overrides.get(op.value, {}),
            **params,
        }

    def simplest_operation(self, *, with_prompt: bool = False) -> OperationType | None:
        """The supported operation needing the fewest media inputs (with a prompt parameter if asked)."""
        ops = [op for op in self.operations if not with_prompt or prompt_field(self.spec(op))]
        return min(ops, key=lambda op: media_fields(self.spec(op)), default=None)

    def prompt_params(self, op: OperationType, prompt: str) -> dict[str, Any]:
        return self.sample_params(op, **{prompt_field(self.spec(op)): prompt})

    async def account(
        self, raw_data: dict[str, Any], account_id: str = "conformance-account"
    ) -> ProviderAccount:
        """The account `extract_account_data` makes of a capture, as the gateway stores it."""
        data = await self.provider.extract_account_data(raw_data)
        assert isinstance(data, dict) and isinstance(data.get("credentials"), dict) and data["credentials"], (
            "extract_account_data must return {'email', 'credentials': {...}} with credentials, got keys "
            f"{sorted(data) if isinstance(data, dict) else type(data).__name__}"
        )
        return ProviderAccount(
            id=account_id,
            provider_id=self.provider.provider_id,
            email=data.get("email"),
            credentials=data["credentials"],
        )

    async def valid_account(self) -> ProviderAccount:
        return await self.account(self.fake.valid_raw_data())

    async def invalid_account(self) -> ProviderAccount:
        return await self.account(self.fake.invalid_raw_data(), "conformance-invalid-account")

    # -- driving the provider the way the dispatcher and poller do ----------------------------------
    async def submit(
        self, op: OperationType, account: ProviderAccount, params: dict[str, Any] | None = None
    ) -> Submission:
        """Validate, apply defaults, map, prepare files, execute, then remove the prepared files."""
        spec = self.spec(op)
        params = self.sample_params(op) if params is None else params
        problems = validate_params(spec, params)
        assert not problems, f"{op.value}: the sample params {params} break the spec: {problems}"
        params = apply_defaults(spec, params)
        resolved: list[str] = []
        # The asset server and the fake (whose results feed later operations) are private hosts.
        policy = FetchPolicy.from_env().allowing(host_port(self.assets.url), host_port(self.fake.url))

        async def recording_resolve(
            source: str, user_id: str | None, suffix: str, **kw: Any
        ) -> tuple[str, list[str]]:
            path, temp = await resolve_source(source, user_id, suffix, policy=policy, **kw)
            resolved.extend(temp)
            return path, temp

        generation = GenerationContext(
            id="conformance-generation",
            provider_id=self.provider.provider_id,
            operation_type=op,
            params=params,
            user_id="conformance-user",
            account_id=account.id,
        )
        temp_paths: list[str] = []
        missing: list[str] = []
        try:
            mapped = await map_and_prepare(self.provider, generation, recording_resolve)
            temp_paths = list(mapped.get("_temp_paths") or [])
            missing = [p for p in temp_paths if not Path(p).exists()]
            result = await self.provider.execute(op, account, mapped)
        finally:
            cleanup_temp_paths([*temp_paths, *(p for p in resolved if p not in temp_paths)])
        return Submission(result, temp_paths, resolved, missing)

    async def wait_terminal(
        self, account: ProviderAccount, job_id: str, op: OperationType | None = None
    ) -> tuple[ProviderStatusResult, list[ProviderStatusResult]]:
        """Poll until a terminal status; return it and every status seen."""
        seen: list[ProviderStatusResult] = []
        deadline = time.monotonic() + self.poll_timeout
        while time.monotonic() < deadline:
            status = await self.provider.check_status(account, job_id, op)
            assert isinstance(status, ProviderStatusResult) and isinstance(status.status, ProviderStatus), (
                f"check_status must return a ProviderStatusResult with a ProviderStatus, got {status!r}"
            )
            seen.append(status)
            if status.status.is_terminal:
                for family, url in (("video", status.video_url), ("image", status.image_url)):
                    if status.status is ProviderStatus.COMPLETED and url:
                        self.results[family] = url
                return status, seen
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {job_id} not terminal after {self.poll_timeout}s: last {seen[-1:]}")

    # -- lifecycle ----------------------------------------------------------------------------------
    async def _open(self) -> None:
        self._saved_config = dict(self.provider.config)
        own = vars(self.provider)
        self._saved_timeout = ("http_timeout" in own, own.get("http_timeout"))
        self.assets.start("127.0.0.1", 0)
        await self.start_fake()

    async def aclose(self) -> None:
        if self.fake is not None:
            self.fake.stop()
        self.assets.stop()
        self.provider.config.clear()
        self.provider.config.update(self._saved_config)
        had_timeout, timeout = self._saved_timeout
        if had_timeout:
            self.provider.http_timeout = timeout
        else:
            vars(self.provider).pop("http_timeout", None)
        await self.provider.aclose()


@asynccontextmanager
async def open_case(
    provider: Provider, create_fake: Callable[..., Any], *, origin: str, **options: Any
) -> AsyncIterator[ConformanceCase]:
    """A case for a provider already loaded (its manifest attached) and its fake's `create_fake`."""
    case = ConformanceCase(provider, create_fake, origin, **options)
    try:
        await case._open()
        yield case
    finally:
        await case.aclose()


def load_folder_provider(folder: str | Path) -> Provider:
    """The provider of a folder holding `manifest.py`, `adapter.py` and `fake_api.py`, loaded as discovery
    loads it, but under the same private package as its fake: a provider instance of the suite's own."""
    folder = Path(folder).resolve()
    module = importlib.import_module(f"{_folder_package(folder)}.manifest")
    return _load(module, str(folder)).provider


@asynccontextmanager
async def case_for_folder(folder: str | Path, **options: Any) -> AsyncIterator[ConformanceCase]:
    """A case for a provider folder (`providers/<id>/`, or a package directory laid out the same way)."""
    provider = load_folder_provider(folder)
    async with open_case(provider, load_fake(folder), origin=str(folder), **options) as case:
        yield case


@asynccontextmanager
async def case_for_package(
    manifest_module: str | types.ModuleType, **options: Any
) -> AsyncIterator[ConformanceCase]:
    """A case for an installed provider package: its manifest module (what the `pixsim.providers` entry point
    names) and the `fake_api` module beside it."""
    module = importlib.import_module(manifest_module) if isinstance(manifest_module, str) else manifest_module
    provider = _load(module, module.__name__).provider
    fake_api = importlib.import_module(f"{module.__package__}.fake_api")
    async with open_case(provider, fake_api.create_fake, origin=module.__name__, **options) as case:
        yield case
