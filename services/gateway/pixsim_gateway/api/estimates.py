"""`/api/v1/estimates`: what a generation would cost, before it is submitted, and `/api/v1/me`: who the
credential is. Both read only the provider registry or the credential: no state changes."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from pixsim_provider_sdk import (
    ProviderError,
    Registry,
    apply_defaults,
)
from pixsim_runtime.requests import check_request
from pydantic import BaseModel, ConfigDict, Field

from ..auth import Caller
from ..bounds import JsonObject, ProviderId
from ..errors import ApiError, responses

log = logging.getLogger(__name__)


class EstimateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_id: ProviderId
    operation_type: str = Field(max_length=64, description="One of the provider's operations")
    params: JsonObject = Field(default_factory=dict, description="As for POST /generations")


class Estimate(BaseModel):
    provider_id: str
    operation_type: str
    credits: dict[str, int] | None = Field(
        description="Credits per credit type the job would reserve (the provider's own estimate); "
        "null when the provider gives none"
    )


class Me(BaseModel):
    user_id: str
    role: str = Field(description="`admin` or `user`")
    key_id: str | None = Field(description="The API key's public id; null for an OIDC token")


def router(registry: Registry) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["estimates"], responses=responses(400, 401, 422, 429))

    @api.post("/estimates", responses=responses(413))
    async def estimate(_principal: Caller, body: EstimateRequest) -> Estimate:
        """The credits a generation with these params would reserve, checked like `POST /generations`
        (400 `provider_not_found` / `unsupported_operation`, 422 `param_invalid`) except that required
        parameters may be missing, with the spec's defaults filled in. Nothing is reserved or submitted."""
        # Required parameters may be left out: a price rarely depends on them (the prompt, a source image),
        # and a form asks for an estimate before it is complete. What is given must be valid.
        checked = check_request(registry, body.provider_id, body.operation_type, body.params, partial=True)
        provider = checked.provider
        try:
            credits = provider.estimate_credits(
                checked.operation_type, apply_defaults(checked.spec, body.params)
            )
        except (ProviderError, ValueError, TypeError, KeyError) as exc:
            log.info("estimate for %s %s refused: %s", body.provider_id, body.operation_type, exc)
            raise ApiError(422, "cannot_estimate", f"{body.provider_id}: {exc}"[:2000]) from None
        return Estimate(
            provider_id=body.provider_id,
            operation_type=body.operation_type,
            credits={str(k): int(v) for k, v in credits.items()} if credits is not None else None,
        )

    @api.get("/me", tags=["keys"])
    async def me(principal: Caller) -> Me:
        """The caller as the gateway sees them: user id, role and (for an API key) the key's id."""
        return Me(user_id=principal.user_id, role=principal.role, key_id=principal.key_id)

    return api
