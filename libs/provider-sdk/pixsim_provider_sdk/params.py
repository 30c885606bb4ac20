"""Parameter specs: their own well-formedness (checked when a provider is discovered, so a typo in a spec
disables that provider with its folder named, instead of being silently ignored), and the validation of
canonical params against them (shared by gateway and dispatcher).

A spec is one `{"parameters": [field, ...]}` per operation; a field is a dict with these keys:

| key | meaning |
|---|---|
| `name` (required) | the parameter's name, an identifier |
| `type` (required) | `string`, `integer`, `number`, `boolean`, `array` or `object` |
| `required` | true: the caller must give it |
| `enum` | the only values allowed (a select in a UI) |
| `default` | filled in when absent (it must itself be valid) |
| `min`, `max` | bounds of an `integer` or `number` |
| `max_length` | longest `string`, in characters |
| `min_items`, `max_items` | sizes of an `array` |
| `description`, `label`, `group`, `placeholder`, `step` | for people and forms; not checked |
| `media` / `format` | `image` or `video`: the parameter takes a media source (an upload in a form) |
"""

from __future__ import annotations

import math
from typing import Any

SPEC_TYPES = ("string", "integer", "number", "boolean", "array", "object")
SPEC_KEYS = frozenset(
    {
        "name",
        "type",
        "required",
        "enum",
        "default",
        "min",
        "max",
        "max_length",
        "min_items",
        "max_items",
        "description",
        "label",
        "group",
        "placeholder",
        "step",
        "media",
        "format",
    }
)
#: Which type each bound applies to (a bound on another type would be silently ignored, so it is refused).
_BOUND_TYPES = {
    "min": ("integer", "number"),
    "max": ("integer", "number"),
    "max_length": ("string",),
    "min_items": ("array",),
    "max_items": ("array",),
}


def spec_problems(spec: Any, operations: list[str]) -> list[str]:
    """Every way a provider's `get_operation_parameter_spec()` is malformed, for these supported operations."""
    if not isinstance(spec, dict):
        return [
            f"the parameter spec must be a dict of operation -> {{'parameters': [...]}}, not {type(spec).__name__}"
        ]
    wanted = set(operations)
    problems = [f"no parameter spec for supported operation {op!r}" for op in sorted(wanted - set(spec))]
    problems += [f"parameter spec for unsupported operation {op!r}" for op in sorted(set(spec) - wanted)]
    for op in sorted(wanted & set(spec)):
        fields = spec[op].get("parameters") if isinstance(spec[op], dict) else None
        if not isinstance(fields, list):
            problems.append(f"{op}: the spec must be {{'parameters': [...]}}")
            continue
        names = [f.get("name") for f in fields if isinstance(f, dict)]
        problems += [
            f"{op}: parameter {n!r} is declared twice"
            for n in sorted({n for n in names if names.count(n) > 1})
        ]
        for field in fields:
            problems += [f"{op}: {p}" for p in field_problems(field)]
    return problems


def field_problems(field: Any) -> list[str]:
    """One parameter spec entry: known keys only, a type, and bounds that fit it (see the module's table)."""
    if (
        not isinstance(field, dict)
        or not isinstance(field.get("name"), str)
        or not field["name"].isidentifier()
    ):
        return [f"parameter {field!r} needs a 'name' that is an identifier"]
    name, kind = field["name"], field.get("type")
    problems = [
        f"parameter {name!r}: unknown key {key!r} (known: {', '.join(sorted(SPEC_KEYS))})"
        for key in sorted(set(field) - SPEC_KEYS)
    ]
    if kind not in SPEC_TYPES:
        problems.append(f"parameter {name!r} needs a 'type', one of {SPEC_TYPES} (got {kind!r})")
    if not isinstance(field.get("required", False), bool):
        problems.append(f"parameter {name!r}: 'required' must be true or false")
    for bound, types in _BOUND_TYPES.items():
        if bound in field and kind in SPEC_TYPES and kind not in types:
            fix = " (use max_length for a string's length)" if kind == "string" else ""
            problems.append(f"parameter {name!r}: '{bound}' applies to {' or '.join(types)}, not {kind}{fix}")
    for bound in ("min", "max"):
        if bound in field and (isinstance(field[bound], bool) or not isinstance(field[bound], int | float)):
            problems.append(f"parameter {name!r}: '{bound}' must be a number")
    if (
        isinstance(field.get("min"), int | float)
        and isinstance(field.get("max"), int | float)
        and field["min"] > field["max"]
    ):
        problems.append(f"parameter {name!r}: min {field['min']} is above max {field['max']}")
    for bound in ("min_items", "max_items"):
        if bound in field and (
            not isinstance(field[bound], int) or isinstance(field[bound], bool) or field[bound] < 0
        ):
            problems.append(f"parameter {name!r}: '{bound}' must be a non-negative integer")
    if not problems and field.get("min_items", 0) > field.get("max_items", math.inf):
        problems.append(f"parameter {name!r}: min_items is above max_items")
    if "max_length" in field and (not isinstance(field["max_length"], int) or field["max_length"] < 1):
        problems.append(f"parameter {name!r}: 'max_length' must be a positive integer")
    if "enum" in field and not problems:
        enum = field["enum"]
        if not isinstance(enum, list) or not enum:
            problems.append(f"parameter {name!r}: 'enum' must be a non-empty list")
        else:
            bare = {k: v for k, v in field.items() if k != "enum"}
            problems += [
                f"enum value {v!r}: {p}"
                for v in enum
                for p in validate_params({"parameters": [bare]}, {name: v})
            ]
    if field.get("default") is not None and not problems:
        problems += [
            f"default: {p}" for p in validate_params({"parameters": [field]}, {name: field["default"]})
        ]
    return problems


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def validate_params(spec: dict[str, Any] | None, params: dict[str, Any]) -> list[str]:
    """Every way `params` breaks `spec` (one operation's `{"parameters": [...]}`), as readable messages."""
    fields = {p["name"]: p for p in (spec or {}).get("parameters", [])}
    problems = [
        f"unknown parameter {name!r} (allowed: {', '.join(sorted(fields)) or 'none'})"
        for name in params
        if name not in fields
    ]
    for name, rule in fields.items():
        if name not in params or params[name] is None:
            if rule.get("required"):
                problems.append(f"parameter {name!r} is required")
            continue
        problems.extend(_check(name, rule, params[name]))
    return problems


def _check(name: str, rule: dict[str, Any], value: Any) -> list[str]:
    kind = rule.get("type", "string")
    expected = _TYPES.get(kind, (object,))
    if isinstance(value, bool) and kind in ("integer", "number") or not isinstance(value, expected):
        return [f"parameter {name!r} must be of type {kind}, got {type(value).__name__}"]
    problems = []
    if "enum" in rule and value not in rule["enum"]:
        problems.append(f"parameter {name!r} must be one of {rule['enum']}, got {value!r}")
    if "min" in rule and isinstance(value, int | float) and value < rule["min"]:
        problems.append(f"parameter {name!r} must be >= {rule['min']}, got {value!r}")
    if "max" in rule and isinstance(value, int | float) and value > rule["max"]:
        problems.append(f"parameter {name!r} must be <= {rule['max']}, got {value!r}")
    if kind == "string" and "max_length" in rule and len(value) > rule["max_length"]:
        problems.append(f"parameter {name!r} must be at most {rule['max_length']} characters")
    if kind == "array" and "min_items" in rule and len(value) < rule["min_items"]:
        problems.append(f"parameter {name!r} needs at least {rule['min_items']} items, got {len(value)}")
    if kind == "array" and "max_items" in rule and len(value) > rule["max_items"]:
        problems.append(f"parameter {name!r} takes at most {rule['max_items']} items, got {len(value)}")
    return problems


def apply_defaults(spec: dict[str, Any] | None, params: dict[str, Any]) -> dict[str, Any]:
    """`params` with the spec's defaults filled in for absent fields."""
    merged = {p["name"]: p["default"] for p in (spec or {}).get("parameters", []) if "default" in p}
    merged.update(params)
    return merged
