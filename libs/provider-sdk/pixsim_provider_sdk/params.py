"""Validation of canonical params against a provider's parameter spec (shared by gateway and dispatcher)."""

from __future__ import annotations

from typing import Any

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
    return problems


def apply_defaults(spec: dict[str, Any] | None, params: dict[str, Any]) -> dict[str, Any]:
    """`params` with the spec's defaults filled in for absent fields."""
    merged = {p["name"]: p["default"] for p in (spec or {}).get("parameters", []) if "default" in p}
    merged.update(params)
    return merged
