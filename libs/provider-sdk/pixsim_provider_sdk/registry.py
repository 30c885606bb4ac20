"""Provider discovery: `providers/<id>/manifest.py` folders and the `pixsim.providers` entry points.

Both paths yield the same module shape: `manifest` (a ProviderManifest), `provider` (a Provider
instance) and optionally `on_register()`. Every service discovers providers with this one function,
so adding a folder is the only change needed to add a provider.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import logging
import os
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pixsim_contracts import ProviderManifest
from pydantic import ValidationError

from ._packages import synthetic_package
from .base import Provider
from .errors import ProviderLoadError, ProviderNotFoundError
from .params import spec_problems

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "pixsim.providers"


@dataclass(frozen=True)
class LoadedProvider:
    manifest: ProviderManifest
    provider: Provider
    origin: str  # the folder or distribution it came from, for error messages


@dataclass(frozen=True)
class DisabledProvider:
    """A provider that could not be loaded or registered: left out, with the reason (and never fatal)."""

    id: str  # the manifest's id, or the folder / entry point name when the manifest never loaded
    origin: str
    reason: str


class Registry:
    """The providers one process knows, by id, and those it had to disable (`disabled`)."""

    def __init__(self, loaded: Iterable[LoadedProvider] = ()) -> None:
        self._by_id: dict[str, LoadedProvider] = {}
        self.disabled: list[DisabledProvider] = []
        for item in loaded:
            self.add(item)

    def disable(self, provider_id: str, origin: str, reason: str) -> None:
        """Leave the provider out (if it was added from `origin`), keeping and logging the reason."""
        log.error("provider %s disabled (%s): %s", provider_id, origin, reason)
        loaded = self._by_id.get(provider_id)
        if loaded is not None and loaded.origin == origin:
            del self._by_id[provider_id]
        self.disabled.append(DisabledProvider(provider_id, origin, reason))

    def add(self, item: LoadedProvider) -> None:
        if item.manifest.id in self._by_id:
            first = self._by_id[item.manifest.id].origin
            raise ProviderLoadError(
                f"duplicate provider id {item.manifest.id!r}: {item.origin} and {first} both declare it"
            )
        self._by_id[item.manifest.id] = item

    def get(self, provider_id: str) -> Provider:
        try:
            return self._by_id[provider_id].provider
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "none"
            raise ProviderNotFoundError(f"unknown provider {provider_id!r} (known: {known})") from None

    def manifest(self, provider_id: str) -> ProviderManifest:
        self.get(provider_id)
        return self._by_id[provider_id].manifest

    def __contains__(self, provider_id: object) -> bool:
        return provider_id in self._by_id

    def __iter__(self) -> Iterator[LoadedProvider]:
        return iter(sorted(self._by_id.values(), key=lambda p: p.manifest.id))

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def detect(self, url: str) -> ProviderManifest | None:
        """The provider whose manifest domains match the URL's host (exact host or a subdomain)."""
        try:
            host = (urlparse(url if "//" in url else f"//{url}").hostname or "").lower()
        except ValueError:  # not a URL at all (e.g. a broken IPv6 literal): no provider's
            return None
        if not host:
            return None
        best: tuple[int, ProviderManifest] | None = None
        for item in self:
            for domain in item.manifest.domains:
                domain = domain.lower()
                matches = host == domain or host.endswith("." + domain)
                if matches and (best is None or len(domain) > best[0]):  # the most specific domain wins
                    best = (len(domain), item.manifest)
        return best[1] if best else None

    async def aclose(self) -> None:
        for item in self:
            await item.provider.aclose()


def discover(
    providers_dir: str | os.PathLike[str] | None,
    *,
    include_entry_points: bool = True,
    only: Iterable[str] | None = None,
    strict: bool = False,
) -> Registry:
    """Load every enabled provider from the folder and, optionally, from installed packages.

    `only` (or the env var `PIXSIM_LOAD_PROVIDERS`, comma-separated) restricts loading to those ids.
    A provider that cannot be loaded (an import error, a broken manifest, a duplicate id) or whose
    `on_register()` raises is disabled: left out of the registry, listed in `registry.disabled` with
    the reason, and logged with its folder or package, while every other provider loads. `strict=True`
    raises `ProviderLoadError` instead (the conformance kit uses it). A missing providers directory
    always raises: that is a deployment mistake, not one plugin's.
    """
    if only is None and os.environ.get("PIXSIM_LOAD_PROVIDERS"):
        only = [p.strip() for p in os.environ["PIXSIM_LOAD_PROVIDERS"].split(",") if p.strip()]
    wanted = set(only) if only is not None else None
    registry = Registry()
    candidates: list[tuple[str, str, Callable[[], types.ModuleType]]] = []
    if providers_dir is not None:
        candidates.extend(_folder_modules(Path(providers_dir)))
    if include_entry_points:
        candidates.extend(_entry_point_modules())
    for name, origin, load in candidates:
        try:
            module = load()
            item = _load(module, origin)
        except ProviderLoadError as exc:
            if strict:
                raise
            registry.disable(name, origin, str(exc))
            continue
        if not item.manifest.enabled:
            log.info("provider %s (%s) is disabled; skipped", item.manifest.id, origin)
            continue
        if wanted is not None and item.manifest.id not in wanted:
            continue
        try:
            registry.add(item)
        except ProviderLoadError as exc:
            if strict:
                raise
            registry.disable(item.manifest.id, origin, str(exc))  # the first of that id stays
            continue
        hook = getattr(module, "on_register", None)
        if callable(hook):
            try:
                hook()
            except Exception as exc:
                reason = f"{origin}: on_register() raised {exc!r}"
                if strict:
                    raise ProviderLoadError(reason) from exc
                registry.disable(item.manifest.id, origin, reason)
    return registry


def _folder_modules(root: Path) -> Iterator[tuple[str, str, Callable[[], types.ModuleType]]]:
    if not root.is_dir():
        raise ProviderLoadError(f"providers directory {root} does not exist")
    package = _package_for(root.resolve())
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith(("_", ".")) or not (folder / "manifest.py").exists():
            continue
        yield folder.name, str(folder), functools.partial(_import_folder, package, folder)


def _import_folder(package: str, folder: Path) -> types.ModuleType:
    if not folder.name.isidentifier():
        raise ProviderLoadError(f"provider folder {folder}: the name must be a Python identifier")
    try:
        return importlib.import_module(f"{package}.{folder.name}.manifest")
    except Exception as exc:
        raise ProviderLoadError(f"provider folder {folder}: cannot import manifest.py: {exc!r}") from exc


def _package_for(root: Path) -> str:
    """A synthetic parent package whose __path__ is the providers dir, so `from .adapter import X` works."""
    name = "pixsim_providers"
    existing = sys.modules.get(name)
    if existing is not None and list(getattr(existing, "__path__", [])) != [str(root)]:
        name = f"pixsim_providers_{hashlib.sha1(str(root).encode()).hexdigest()[:10]}"
    return synthetic_package(name, root)


def _entry_point_modules() -> Iterator[tuple[str, str, Callable[[], types.ModuleType]]]:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"package {ep.dist.name if ep.dist else '?'} (entry point {ep.name})"
        yield ep.name, origin, functools.partial(_load_entry_point, ep, origin)


def _load_entry_point(ep: Any, origin: str) -> types.ModuleType:
    try:
        loaded = ep.load()
        return loaded if isinstance(loaded, types.ModuleType) else importlib.import_module(ep.value)
    except Exception as exc:
        raise ProviderLoadError(f"{origin}: cannot load: {exc!r}") from exc


def _load(module: types.ModuleType, origin: str) -> LoadedProvider:
    manifest = getattr(module, "manifest", None)
    provider = getattr(module, "provider", None)
    if isinstance(manifest, dict):
        try:
            manifest = ProviderManifest(**manifest)
        except ValidationError as exc:
            raise ProviderLoadError(f"{origin}: invalid manifest: {exc}") from exc
    if not isinstance(manifest, ProviderManifest):
        raise ProviderLoadError(f"{origin}: manifest.py must define `manifest = ProviderManifest(...)`")
    if not isinstance(provider, Provider):
        raise ProviderLoadError(
            f"{origin}: manifest.py must define `provider`, an instance of a Provider subclass"
        )
    provider.attach_manifest(manifest)
    try:
        problems = spec_problems(
            provider.get_operation_parameter_spec(), [op.value for op in provider.supported_operations]
        )
    except Exception as exc:
        raise ProviderLoadError(
            f"{origin}: get_operation_parameter_spec / supported_operations raised {exc!r}"
        ) from exc
    if problems:
        raise ProviderLoadError(f"{origin}: invalid parameter spec: " + "; ".join(problems))
    return LoadedProvider(manifest=manifest, provider=provider, origin=origin)
