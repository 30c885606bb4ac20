"""`/api/v1/providers`: what is installed, what each can do, and URL detection."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pixsim_provider_sdk import ProviderNotFoundError, Registry

from ..bounds import PROVIDER_PATTERN
from ..errors import ApiError, responses


def describe(registry: Registry, provider_id: str) -> dict[str, Any]:
    provider = registry.get(provider_id)
    return {
        **registry.manifest(provider_id).model_dump(mode="json"),
        "operations": [op.value for op in provider.supported_operations],
        "parameter_spec": provider.get_operation_parameter_spec(),
    }


def router(registry: Registry) -> APIRouter:
    api = APIRouter(prefix="/api/v1/providers", tags=["providers"], responses=responses(400, 401, 422, 429))

    @api.get("")
    async def list_providers() -> dict[str, Any]:
        """The providers that run, and those disabled because they failed to load or register (with why)."""
        disabled = [{"id": d.id, "origin": d.origin, "reason": d.reason} for d in registry.disabled]
        return {"items": [describe(registry, pid) for pid in registry.ids()], "disabled": disabled}

    @api.get("/detect", responses=responses(404))
    async def detect_provider(url: Annotated[str, Query(min_length=1, max_length=2048)]) -> dict[str, Any]:
        manifest = registry.detect(url)
        if manifest is None:
            raise ApiError(404, "no_provider_for_url", f"no provider's domains match {url[:200]!r}")
        return describe(registry, manifest.id)

    @api.get("/{provider_id}", responses=responses(404))
    async def get_provider(provider_id: Annotated[str, Path(pattern=PROVIDER_PATTERN)]) -> dict[str, Any]:
        try:
            return describe(registry, provider_id)
        except ProviderNotFoundError as exc:
            why = next((d.reason for d in registry.disabled if d.id == provider_id), None)
            if why is not None:
                raise ApiError(
                    404, "provider_disabled", f"provider {provider_id!r} is disabled: {why}"
                ) from None
            raise ApiError(404, "provider_not_found", str(exc)) from None

    return api
