"""The new-generation form, made from a provider's parameter spec, and its answers turned back into params.

A spec entry (`get_operation_parameter_spec`) is `{name, type, required?, default?, enum?, min?, max?,
max_length?, group?, description?}`. Enums become selects, numbers number inputs with their range,
media parameters (`*_url`, `*_urls`) a file upload plus a URL / `asset://` box. The console converts
only types (so "abc" in a number box is its own error); every rule of the spec is checked by the API,
whose 422 problems are put back beside the fields they name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MEDIA_NAME = re.compile(r"(^|_)(url|urls)$")
MULTILINE_FROM = 200  # string parameters allowed more characters than this get a text area
_PROBLEM_FIELD = (
    re.compile(r"parameter '([^']+)'"),  # validate_params: "parameter 'duration' must be <= 20, got 99"
    re.compile(r"^params\.([A-Za-z0-9_]+)"),  # request validation: "params.x: ..."
    re.compile(r"^([A-Za-z0-9_]+): "),  # asset checks: "image_url: no asset ..."
)


@dataclass
class FormField:
    name: str
    kind: str  # string | integer | number | boolean | array
    required: bool = False
    default: Any = None
    enum: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = None
    description: str = ""
    group: str = "options"
    value: str = ""  # what the form shows now
    error: str | None = None

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()

    @property
    def media(self) -> bool:
        return bool(MEDIA_NAME.search(self.name)) and self.kind in ("string", "array")

    @property
    def widget(self) -> str:
        if self.enum is not None:
            return "select"
        if self.media:
            return "media"
        if self.kind == "boolean":
            return "boolean"
        if self.kind in ("integer", "number"):
            return "number"
        if self.kind == "array" or self.name == "prompt" or (self.max_length or 0) > MULTILINE_FROM:
            return "textarea"
        return "text"

    @property
    def step(self) -> str:
        return "1" if self.kind == "integer" else "any"

    @property
    def options(self) -> list[tuple[str, str]]:
        """(value, label) of a select; a blank first choice where the field may be left out."""
        blank = (
            []
            if self.required and self.default is None
            else [("", f"(default: {_show(self.default)})" if self.default is not None else "(none)")]
        )
        return blank + [(_show(v), _show(v)) for v in self.enum or []]

    @property
    def hint(self) -> str:
        parts = []
        if self.min is not None or self.max is not None:
            parts.append(
                f"{_show(self.min) if self.min is not None else '…'} to "
                f"{_show(self.max) if self.max is not None else '…'}"
            )
        if self.max_length:
            parts.append(f"at most {self.max_length} characters")
        if self.default is not None and self.enum is None:
            parts.append(f"default {_show(self.default)}")
        if self.kind == "array":
            parts.append("one per line")
        return "; ".join(parts)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | dict):
        return json.dumps(value)
    return "" if value is None else str(value)


def fields_of(spec: dict[str, Any] | None) -> list[FormField]:
    fields = []
    for p in (spec or {}).get("parameters", []):
        enum = p.get("enum")
        fields.append(
            FormField(
                name=p["name"],
                kind=p.get("type", "string"),
                required=bool(p.get("required")),
                default=p.get("default"),
                enum=list(enum) if isinstance(enum, list) else None,
                min=p.get("min"),
                max=p.get("max"),
                max_length=p.get("max_length"),
                description=str(p.get("description") or ""),
                group=str(p.get("group") or "options"),
            )
        )
    return fields


def groups_of(fields: list[FormField]) -> list[tuple[str, list[FormField]]]:
    """The fields by group, in the spec's order, `core` first."""
    groups: dict[str, list[FormField]] = {}
    for f in fields:
        groups.setdefault(f.group, []).append(f)
    return sorted(groups.items(), key=lambda item: item[0] != "core")


def with_defaults(fields: list[FormField]) -> None:
    """A fresh form shows each default."""
    for f in fields:
        f.value = _show(f.default) if f.default not in (None, []) else ""


def fill(fields: list[FormField], form: dict[str, str]) -> None:
    """Show what was typed (after a refused submit) instead of the defaults."""
    for f in fields:
        f.value = form.get(f.name, "")


def to_params(fields: list[FormField], form: dict[str, str], uploads: dict[str, list[str]]) -> dict[str, Any]:
    """The params the form stands for; a field that is not even of its type gets `error` set. `uploads`
    are the `asset://` URLs of files just uploaded, per field (they win over a typed URL)."""
    params: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f.name, "").strip()
        if f.name in uploads:
            params[f.name] = uploads[f.name] if f.kind == "array" else uploads[f.name][0]
            f.value = "\n".join(uploads[f.name])
            continue
        if raw == "":
            continue
        try:
            params[f.name] = _convert(f, raw)
        except ValueError as exc:
            f.error = str(exc)
    return params


def _convert(f: FormField, raw: str) -> Any:
    if f.enum is not None:  # the enum's own value (an int for an integer enum), matched by its text
        for choice in f.enum:
            if _show(choice) == raw:
                return choice
        return raw  # not one of them: the API says so, beside the field
    if f.kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if f.kind == "number":
        try:
            number = float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
        return int(number) if number.is_integer() else number
    if f.kind == "boolean":
        if raw not in ("true", "false"):
            raise ValueError("must be true or false")
        return raw == "true"
    if f.kind == "array":
        return [line.strip() for line in raw.splitlines() if line.strip()]
    if f.kind == "object":
        try:
            return json.loads(raw)
        except ValueError:
            raise ValueError("must be JSON") from None
    return raw


def place_problems(fields: list[FormField], message: str) -> list[str]:
    """Put each problem of an API error message beside the field it names; the rest are returned."""
    by_name = {f.name: f for f in fields}
    loose = []
    for problem in (p.strip() for p in message.split("; ")):
        if not problem:
            continue
        name = next((m.group(1) for rx in _PROBLEM_FIELD if (m := rx.search(problem))), None)
        if name in by_name:
            target = by_name[name]
            target.error = f"{target.error}; {problem}" if target.error else problem
        else:
            loose.append(problem)
    return loose
