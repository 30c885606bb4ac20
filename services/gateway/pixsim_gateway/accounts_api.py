"""`/api/v1/accounts`: add browser-captured or API-key accounts; read, change and remove them.

Credentials are encrypted before they are stored and never leave this module in a response,
an event or a log line: responses are built from an allow-list of fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pixsim_contracts import AccountCreated, AccountDeleted, AccountUpdated, new_id
from pixsim_provider_sdk import ProviderNotFoundError
from pixsim_runtime.accounts import ACCOUNTS
from pixsim_runtime.broker import publish_event
from pixsim_runtime.secrets import CredentialCipher
from pixsim_runtime.service import ServiceContext

from .errors import ApiError
from .generations_api import jsonable

PUBLIC_FIELDS = ("provider_id", "email", "status", "enabled", "priority", "concurrency_limit",
                 "created_at", "updated_at", "last_used_at")


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_id: str
    raw_data: dict[str, Any] = Field(description="What the browser extension captured (cookies, tokens, keys)")
    email: str | None = None
    credits: dict[str, int] = Field(default_factory=dict)
    priority: int = 0
    concurrency_limit: int = Field(default=1, ge=1)


class AccountPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int | None = None
    concurrency_limit: int | None = Field(default=None, ge=1)
    enabled: bool | None = None


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return jsonable({"id": doc["_id"], **{k: doc.get(k) for k in PUBLIC_FIELDS}})


def router(ctx: ServiceContext, cipher: CredentialCipher) -> APIRouter:
    api = APIRouter(prefix="/api/v1/accounts", tags=["accounts"])
    accounts = ctx.db[ACCOUNTS]

    async def find(account_id: str) -> dict[str, Any]:
        doc = await accounts.find_one({"_id": account_id})
        if doc is None:
            raise ApiError(404, "account_not_found", f"no account with id {account_id!r}")
        return doc

    @api.post("", status_code=201)
    async def create_account(body: AccountCreate) -> JSONResponse:
        try:
            provider = ctx.registry.get(body.provider_id)
        except ProviderNotFoundError as exc:
            raise ApiError(400, "unknown_provider", str(exc)) from None
        try:
            data = await provider.extract_account_data(body.raw_data, fallback_email=body.email)
        except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
            # The adapter's message names what is missing; it must not (and by contract does not) echo secrets.
            raise ApiError(422, "invalid_account_data", f"{body.provider_id}: {exc}") from None
        now = datetime.now(UTC)
        doc = {
            "_id": f"acc_{new_id()}", "provider_id": body.provider_id, "email": data.get("email") or body.email,
            "credentials": cipher.encrypt(data.get("credentials") or {}), "status": "active", "enabled": True,
            "priority": body.priority, "concurrency_limit": body.concurrency_limit,
            "created_at": now, "updated_at": now, "last_used_at": None,
        }
        await accounts.insert_one(doc)
        await publish_event(ctx.broker, AccountCreated(account_id=doc["_id"], provider_id=body.provider_id,
                                                       email=doc["email"], credits=body.credits))
        return JSONResponse(public(doc), status_code=201)

    @api.get("")
    async def list_accounts(provider_id: str | None = None) -> dict[str, Any]:
        query = {"provider_id": provider_id} if provider_id else {}
        docs = await accounts.find(query).sort("created_at", -1).to_list()
        return {"items": [public(d) for d in docs]}

    @api.get("/{account_id}")
    async def get_account(account_id: str) -> dict[str, Any]:
        return public(await find(account_id))

    @api.patch("/{account_id}")
    async def update_account(account_id: str, body: AccountPatch) -> dict[str, Any]:
        doc = await find(account_id)
        changes = body.model_dump(exclude_none=True)
        if changes:
            await accounts.update_one({"_id": account_id}, {"$set": {**changes, "updated_at": datetime.now(UTC)}})
            await publish_event(ctx.broker, AccountUpdated(account_id=account_id, provider_id=doc["provider_id"],
                                                           changes=changes))
        return public(await find(account_id))

    @api.delete("/{account_id}", status_code=204)
    async def delete_account(account_id: str) -> Response:
        doc = await find(account_id)
        await accounts.delete_one({"_id": account_id})
        await publish_event(ctx.broker, AccountDeleted(account_id=account_id, provider_id=doc["provider_id"]))
        return Response(status_code=204)

    return api
