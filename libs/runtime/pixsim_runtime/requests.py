"""The one check of a generation request: is the provider known, does it support the operation, do the
params meet the operation's spec.

The gateway runs it before it publishes `requested` (and on `POST /estimates`); the dispatcher runs it
again, because upstream systems publish `requested` themselves. A refusal carries one of three codes,
the same on both sides: the gateway's HTTP error code and a failed generation's `error.code`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pixsim_contracts import OperationType
from pixsim_provider_sdk import Provider, ProviderNotFoundError, Registry, validate_params

PROVIDER_NOT_FOUND = "provider_not_found"
UNSUPPORTED_OPERATION = "unsupported_operation"
PARAM_INVALID = "param_invalid"
MAX_MESSAGE = 2000


class RequestRejected(Exception):
    """The request cannot run as asked; `code` is one of the three above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CheckedRequest:
    provider: Provider
    operation_type: OperationType
    spec: dict[str, Any] | None  # the operation's parameter spec, None when the provider gives none


def find_provider(registry: Registry, provider_id: str) -> Provider:
    try:
        return registry.get(provider_id)
    except ProviderNotFoundError as exc:
        raise RequestRejected(PROVIDER_NOT_FOUND, str(exc)) from None


def check_request(
    registry: Registry,
    provider_id: str,
    operation_type: str,
    params: dict[str, Any],
    *,
    partial: bool = False,
) -> CheckedRequest:
    """The provider and spec for this request, or `RequestRejected`. With `partial`, required parameters
    may be missing (an estimate for a form not yet complete); what is given must still be valid."""
    provider = find_provider(registry, provider_id)
    operation = getattr(operation_type, "value", operation_type)
    supported = [op.value for op in provider.supported_operations]
    if operation not in supported:
        raise RequestRejected(
            UNSUPPORTED_OPERATION,
            f"provider {provider_id!r} does not support {operation!r} (supported: {', '.join(supported)})",
        )
    spec = provider.get_operation_parameter_spec().get(operation)
    rules = spec
    if partial and spec:
        rules = {**spec, "parameters": [{**p, "required": False} for p in spec.get("parameters", [])]}
    if problems := validate_params(rules, params):
        raise RequestRejected(PARAM_INVALID, "; ".join(problems)[:MAX_MESSAGE])
    return CheckedRequest(provider, OperationType(operation), spec)
