"""The `resolve_source_fn` handed to `prepare_execution_params`: a source URL -> a local temp file.

Sources are fetched by `safe_fetch` only: http(s) URLs of public hosts (or hosts the operator allows),
never local files. See `safe_fetch` for what is refused and why.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .errors import InvalidParametersError
from .safe_fetch import FetchPolicy, check_url, fetch_source

if TYPE_CHECKING:
    from collections.abc import Collection

    from pixsim_contracts import OperationType

    from .base import Provider, ResolveSourceFn
    from .results import GenerationContext

#: Words in a parameter's name that say which media family it wants.
_FAMILY_WORDS = {
    "video": ("video",),
    "image": ("image", "mask", "photo", "frame", "img"),
    "audio": ("audio",),
}


def expected_family(param: str, default_suffix: str) -> str | None:
    """The media family ("image", "video", "audio") a source parameter wants: from its name, else from
    the suffix its file gets (".png" -> image); None when neither says."""
    name = param.lower()
    for family, words in _FAMILY_WORDS.items():
        if any(word in name for word in words):
            return family
    guessed = mimetypes.guess_type(f"source{default_suffix}")[0] or ""
    family = guessed.split("/")[0]
    return family if family in _FAMILY_WORDS else None


async def resolve_source(
    source: str,
    user_id: str | None,
    default_suffix: str,
    *,
    param: str = "source",
    expect: str | None = None,
    policy: FetchPolicy | None = None,
) -> tuple[str, list[str]]:
    """Fetch the http(s) URL `source` into a temp file; return (path, [path]).

    `param` names the parameter in error messages; `expect` is the media family it wants (default: from
    `param` and `default_suffix`); `policy` defaults to `FetchPolicy.from_env()` (`PIXSIM_FETCH_*`).
    Raises `SourceRejected` (`param_invalid`) for every refusal or failure, leaving no file behind."""
    url = check_url(source, param)  # a path or another scheme is refused before a temp file exists
    expect = expect or expected_family(param, default_suffix)
    suffix = PurePosixPath(url.path).suffix.lower()
    suffix_family = (mimetypes.guess_type(f"source{suffix}")[0] or "").split("/")[0]
    if suffix_family != expect and not (expect is None and suffix_family in _FAMILY_WORDS):
        suffix = default_suffix  # the URL's suffix (".php", none) does not name a file of the wanted kind
    fd, tmp = tempfile.mkstemp(prefix="pixsim-src-", suffix=suffix)
    os.close(fd)
    try:
        await fetch_source(url, tmp, param=param, expect=expect, policy=policy or FetchPolicy.from_env())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, [tmp]


def cleanup_temp_paths(paths: list[str] | None) -> None:
    for path in paths or []:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


async def prepare_source_param(
    mapped_params: dict,
    resolve_source_fn,
    *,
    user_id: str | None,
    param: str = "image_url",
    local_key: str = "local_image_path",
    default_suffix: str = ".png",
    expect: str | None = None,
) -> dict:
    """The common `prepare_execution_params` body: fetch the source named by `param` to a local file
    stored under `local_key`, and list it in `_temp_paths` for the dispatcher to delete.
    `expect` is the media family the source must be (default: from `param` and `default_suffix`).
    Params without that source are returned unchanged."""
    source = mapped_params.get(param)
    if not source:
        return mapped_params
    local_path, temp_paths = await resolve_source_fn(
        source, user_id, default_suffix, param=param, expect=expect
    )
    return {
        **mapped_params,
        local_key: local_path,
        "_temp_paths": [*mapped_params.get("_temp_paths", []), *temp_paths],
    }


async def prepare_image_source(
    provider_id: str,
    generation: GenerationContext,
    mapped_params: dict,
    resolve_source_fn: ResolveSourceFn,
    *,
    needed_by: Collection[OperationType],
) -> dict:
    """`prepare_execution_params` of an adapter whose image operations take `image_url`: the image is fetched
    to `local_image_path` (listed in `_temp_paths`); an operation in `needed_by` without one is refused."""
    if not mapped_params.get("image_url") and generation.operation_type in needed_by:
        raise InvalidParametersError(f"{provider_id}: {generation.operation_type.value} needs image_url")
    return await prepare_source_param(mapped_params, resolve_source_fn, user_id=generation.user_id)


class ImageUrlSource:
    """Mix into a `Provider` (before it: `class MyProvider(ImageUrlSource, Provider)`) whose operations take one
    source image as `image_url`: the dispatcher fetches it to `local_image_path` (listed in `_temp_paths`)
    before `execute`. An operation in `image_url_required_by` without an `image_url` is refused."""

    image_url_required_by: frozenset[OperationType] = frozenset()
    provider_id: str

    def requires_file_preparation(self) -> bool:
        # The hook has no operation argument; preparing params without an image changes nothing.
        return True

    async def prepare_execution_params(
        self, generation: GenerationContext, mapped_params: dict[str, Any], resolve_source_fn: ResolveSourceFn
    ) -> dict[str, Any]:
        return await prepare_image_source(
            self.provider_id,
            generation,
            mapped_params,
            resolve_source_fn,
            needed_by=self.image_url_required_by,
        )


@asynccontextmanager
async def local_source(
    provider_id: str,
    source: str | None,
    local_path: str | None,
    *,
    param: str = "image_url",
    default_suffix: str = ".png",
    needed_by: str = "this operation",
) -> AsyncIterator[str]:
    """The local file of a source parameter: the one `prepare_execution_params` fetched (`local_path`), or,
    when `execute` is called directly with unprepared params, `source` fetched here (`SourceRejected` if
    refused) and deleted when the block ends. No source at all: `InvalidParametersError`."""
    if local_path:
        yield local_path
        return
    if not source:
        raise InvalidParametersError(f"{provider_id}: {needed_by} needs {param}")
    path, temp_paths = await resolve_source(source, None, default_suffix, param=param)
    try:
        yield path
    finally:
        cleanup_temp_paths(temp_paths)


def read_local_file(provider_id: str, path: str | os.PathLike[str], name: str | None = None) -> bytes:
    """The bytes of a prepared file; `InvalidParametersError` naming it (`name`, default the path) when it
    cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidParametersError(f"{provider_id}: cannot read {name or path}: {exc.strerror}") from exc


async def map_and_prepare(
    provider: Provider, generation: GenerationContext, resolve_source_fn: ResolveSourceFn
) -> dict[str, Any]:
    """What `execute` gets for a generation: `map_parameters` of its canonical params, then
    `prepare_execution_params` when the provider asks for it. The caller deletes the `_temp_paths` after
    `execute`, whatever happens (`cleanup_temp_paths`)."""
    mapped = provider.map_parameters(generation.operation_type, generation.params)
    if not provider.requires_file_preparation():
        return mapped
    return await provider.prepare_execution_params(generation, mapped, resolve_source_fn)
