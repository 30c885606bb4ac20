"""What the conformance suite checks, as plain functions that return every problem found.

Each `*_problems` function returns a list of readable messages (empty: conforms), so a failing test
names everything that is wrong at once. `sample_params` builds the smallest valid input for an
operation from the provider's own parameter spec, so the suite needs no provider-specific code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from pixsim_contracts import OperationType, ProviderKind, ProviderManifest, ProviderStatus
from pydantic import ValidationError

from ..base import Provider
from ..params import spec_problems as sdk_spec_problems

VIDEO_OPERATIONS = frozenset(
    {
        OperationType.TEXT_TO_VIDEO,
        OperationType.IMAGE_TO_VIDEO,
        OperationType.VIDEO_EXTEND,
        OperationType.VIDEO_TRANSITION,
        OperationType.VIDEO_MODIFY,
    }
)
IMAGE_OPERATIONS = frozenset(
    {
        OperationType.TEXT_TO_IMAGE,
        OperationType.IMAGE_TO_IMAGE,
        OperationType.IMAGE_EDIT,
        OperationType.IMAGE_COMPOSITE,
    }
)
TEXT_OPERATIONS = frozenset({OperationType.TEXT_TO_IMAGE, OperationType.TEXT_TO_VIDEO})
PROMPT_TEXT = "a red fox running through fresh snow"

_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
#: "raw=status" pairs in status_mapping_notes (also "->", "=>", "→").
_STATUS_PAIR = re.compile(r"([^,;=\n]+?)\s*(?:=>|->|→|=)\s*([A-Za-z_]+)")
#: Words in a parameter name that mark a media source (image_url, mask, source_image, image_urls...).
_MEDIA_WORDS = {"image", "img", "photo", "mask", "frame", "source", "file", "media", "asset", "url"}
_SIZE = re.compile(r"(\d{2,4})x(\d{2,4})")
_VIDEO_WORDS = {"video", "clip"}


# -- manifest and spec ----------------------------------------------------------------------------
def manifest_problems(provider: Provider) -> list[str]:
    """The manifest is complete and consistent with the adapter."""
    m = provider.manifest
    problems: list[str] = []
    try:
        ProviderManifest.model_validate(m.model_dump())
    except ValidationError as exc:
        problems.append(f"the manifest does not validate: {exc}")
    if provider.provider_id != m.id:
        problems.append(f"provider_id {provider.provider_id!r} differs from the manifest id {m.id!r}")
    if not m.name.strip():
        problems.append("name is empty")
    if not _SEMVER.match(m.version):
        problems.append(f"version {m.version!r} is not semver (e.g. 1.0.0)")
    if not m.credit_types:
        problems.append("credit_types is empty: billing accepts no credit type")
    problems += [
        f"credit type {c!r} must be letters, digits, '_' or '-'"
        for c in m.credit_types
        if not _TOKEN.match(c)
    ]
    if len(set(m.credit_types)) != len(m.credit_types):
        problems.append(f"credit_types repeats a value: {m.credit_types}")
    if not m.domains:
        problems.append("domains is empty: /providers/detect cannot find this provider")
    problems += [
        f"domain {d!r} must be a bare lower-case host name (no scheme, port or path)"
        for d in m.domains
        if not _HOST.match(d)
    ]
    problems += status_notes_problems(m.status_mapping_notes)
    problems += _kind_problems(m.kind, provider.supported_operations)
    return problems


def status_notes_problems(notes: str | None) -> list[str]:
    """`status_mapping_notes` documents the raw statuses as `raw=status` pairs, at least the raw values that
    mean completed and failed. Pairs naming something else (an error class, say) are free text."""
    if not notes or not notes.strip():
        return ["status_mapping_notes is empty: document how the provider's statuses map"]
    named = {status.lower() for _, status in _STATUS_PAIR.findall(notes)} & {s.value for s in ProviderStatus}
    missing = sorted({ProviderStatus.COMPLETED.value, ProviderStatus.FAILED.value} - named)
    if missing:
        hint = "write 'raw=status' pairs, e.g. 'queued=pending, done=completed, error=failed'"
        return [f"status_mapping_notes {notes!r} does not say which raw statuses map to {missing} ({hint})"]
    return []


def _kind_problems(kind: ProviderKind, operations: list[OperationType]) -> list[str]:
    if not operations:
        return ["supported_operations is empty"]
    if len(set(operations)) != len(operations):
        return [f"supported_operations repeats an operation: {[op.value for op in operations]}"]
    videos = [op.value for op in operations if op in VIDEO_OPERATIONS]
    images = [op.value for op in operations if op in IMAGE_OPERATIONS]
    if kind is ProviderKind.VIDEO and (images or not videos):
        return [f"kind is video but the operations are {[op.value for op in operations]} (use kind both?)"]
    if kind is ProviderKind.IMAGE and (videos or not images):
        return [f"kind is image but the operations are {[op.value for op in operations]} (use kind both?)"]
    if kind is ProviderKind.BOTH and not (videos and images):
        return [f"kind is both but the operations are {[op.value for op in operations]}"]
    return []


def spec_problems(provider: Provider) -> list[str]:
    """One well-formed parameter spec per supported operation, and no spec for any other (the check
    discovery also makes: `pixsim_provider_sdk.params.spec_problems`)."""
    return sdk_spec_problems(
        provider.get_operation_parameter_spec(), [op.value for op in provider.supported_operations]
    )


def credit_problems(where: str, credits: Any, declared: list[str], *, may_be_none: bool = False) -> list[str]:
    """Credits are `{credit type: non-negative int}` with every type one the manifest declares (billing
    refuses any other type, and money is counted in whole credits)."""
    if credits is None:
        return [] if may_be_none else [f"{where} returned None; return a dict of credit type -> credits"]
    if not isinstance(credits, dict):
        return [f"{where} returned {type(credits).__name__}, not a dict of credit type -> credits"]
    problems = [
        f"{where}: credit type {ct!r} is not in the manifest's credit_types {declared}"
        for ct in credits
        if ct not in declared
    ]
    problems += [
        f"{where}: {ct}={n!r} is not a non-negative integer"
        for ct, n in credits.items()
        if isinstance(n, bool) or not isinstance(n, int) or n < 0
    ]
    return problems


def progress_problems(op: OperationType, seen: list) -> list[str]:
    """Progress seen while polling stays within 0..1 and never goes back."""
    values = [s.progress for s in seen if s.progress is not None]
    problems = [f"{op.value}: progress {p} is outside 0..1" for p in values if not 0 <= p <= 1]
    if values != sorted(values):
        problems.append(f"{op.value}: progress went backwards: {values}")
    return problems


# -- sample inputs --------------------------------------------------------------------------------
def media_kind(field: dict[str, Any]) -> str | None:
    """'image' or 'video' when the parameter takes a media source (by a 'media'/'format' hint or its name)."""
    hint = field.get("media") or field.get("format")
    if hint in ("image", "video"):
        return hint
    words = {word.removesuffix("s") for word in re.split(r"[^a-z0-9]+", field["name"].lower())}
    if words & _VIDEO_WORDS:
        return "video"
    return "image" if words & _MEDIA_WORDS or hint in ("uri", "url") else None


def sample_value(field: dict[str, Any], media_url: Callable[[str], str]) -> Any:
    """A valid value for one parameter: its default or first enum value, a media URL, else by type/bounds.
    A media list has `min_items` entries, else two (transitions and fusions need at least two sources)."""
    kind = field.get("type", "string")
    if field.get("enum"):
        return field["default"] if field.get("default") in field["enum"] else field["enum"][0]
    if field.get("default") is not None:
        return field["default"]
    media = media_kind(field)
    if media and kind == "string":
        return media_url(media)
    if media and kind == "array":
        return [media_url(media)] * min(field.get("min_items", 2), field.get("max_items", 2))
    if kind in ("integer", "number"):
        value = field.get("min", 1)
        value = min(value, field["max"]) if "max" in field else value
        return math.ceil(value) if kind == "integer" else float(value)
    text = PROMPT_TEXT if "prompt" in field["name"] else "sample"
    return {
        "string": text[: field.get("max_length", len(text))],
        "boolean": False,
        "array": [text],
        "object": {},
    }.get(kind, text)


def sample_params(
    spec: dict[str, Any], media_url: Callable[[str], str], op: OperationType | None = None
) -> dict[str, Any]:
    """The smallest valid params for one operation's spec: every required parameter and the prompt.
    Either/or inputs cannot be marked required, so an operation that transforms media but requires no
    media parameter (say `video_url` or an id) also gets its first optional media parameter."""
    fields = spec.get("parameters", [])
    params = {f["name"]: sample_value(f, media_url) for f in fields if f.get("required")}
    prompt = next((f for f in fields if f["name"] == prompt_field(spec)), None)
    if prompt and prompt["name"] not in params:
        params[prompt["name"]] = sample_value(prompt, media_url)
    takes_media = op is not None and op not in TEXT_OPERATIONS
    if takes_media and not any(media_kind(f) for f in fields if f.get("required")):
        optional = next(
            (f for f in fields if media_kind(f) and f.get("type", "string") in ("string", "array")), None
        )
        if optional is not None:
            params[optional["name"]] = sample_value({**optional, "default": None}, media_url)
    return params


def frame_size(spec: dict[str, Any]) -> tuple[int, int] | None:
    """The first `WxH` size among the parameters' defaults and enum values (e.g. size=1280x720), if any."""
    for field in spec.get("parameters", []):
        for value in [field.get("default"), *(field.get("enum") or [])]:
            match = _SIZE.fullmatch(value) if isinstance(value, str) else None
            if match:
                return int(match[1]), int(match[2])
    return None


def prompt_field(spec: dict[str, Any]) -> str | None:
    """The name of the operation's prompt parameter, if it has one."""
    names = [f["name"] for f in spec.get("parameters", []) if f.get("type", "string") == "string"]
    return (
        "prompt"
        if "prompt" in names
        else next((n for n in names if n.endswith("prompt") and "neg" not in n), None)
    )


def media_fields(spec: dict[str, Any]) -> int:
    return sum(1 for f in spec.get("parameters", []) if f.get("required") and media_kind(f))
