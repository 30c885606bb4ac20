"""`/api/v1/providers`: what is installed, what each can do, and URL detection."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pixsim_provider_sdk import ProviderNotFoundError, Registry

from .errors import ApiError


def describe(registry: Registry, provider_id: str) -> dict[str, Any]:
    provider = registry.get(provider_id)
    return {
        **registry.manifest(provider_id).model_dump(mode="json"),
        "operations": [op.value for op in provider.supported_operations],
        "parameter_spec": provider.get_operation_parameter_spec(),
    }


def router(registry: Registry) -> APIRouter:
    api = APIRouter(prefix="/api/v1/providers", tags=["providers"])

    @api.get("")
    async def list_providers() -> dict[str, Any]:
        return {"items": [describe(registry, pid) for pid in registry.ids()]}

    @api.get("/detect")
    async def detect_provider(url: str = Query(min_length=1)) -> dict[str, Any]:
        manifest = registry.detect(url)
        if manifest is None:
            raise ApiError(404, "no_provider_for_url", f"no provider's domains match {url!r}")
        return describe(registry, manifest.id)

    @api.get("/{provider_id}")
    async def get_provider(provider_id: str) -> dict[str, Any]:
        try:
            return describe(registry, provider_id)
        except ProviderNotFoundError as exc:
            raise ApiError(404, "provider_not_found", str(exc)) from None

    return api
