"""`/api/v1/accounts`: add browser-captured or API-key accounts; read, change, fund, sync and remove them.

Every change is an account event (`pixsim_runtime.accounts.record`); opening credits and top-ups are
`credits.granted` events and a sync is a `credits.synced` event, all booked by billing. Credentials
are encrypted before they are stored and never leave in a response, an event or a log line:
responses are built from an allow-list of fields (`accounts_views`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pixsim_contracts import (
    AccountCreated,
    AccountDeleted,
    AccountUpdated,
    CreditsGranted,
    Event,
    new_id,
)
from pixsim_provider_sdk import Provider, ProviderNotFoundError
from pixsim_runtime.accounts import ACCOUNTS, flush_outbox, fold, new_account, record, status_change
from pixsim_runtime.broker import publish_event
from pixsim_runtime.secrets import CredentialCipher
from pixsim_runtime.service import ServiceContext
from pydantic import BaseModel, ConfigDict, Field

from .accounts_sync import sync_account
from .accounts_views import account_view, accounts_view, ledger_page
from .errors import ApiError


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_id: str
    raw_data: dict[str, Any] = Field(description="What the browser extension captured (cookies, tokens, keys)")
    email: str | None = None
    credits: dict[str, int] = Field(default_factory=dict, description="Opening balance per credit type")
    priority: int = 0
    concurrency_limit: int = Field(default=1, ge=1)


class AccountPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int | None = None
    concurrency_limit: int | None = Field(default=None, ge=1)
    enabled: bool | None = Field(default=None, description="false disables; true also revives a failed account")
    raw_data: dict[str, Any] | None = Field(default=None, description="New credentials (a fresh browser capture)")


class CreditGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credit_type: str
    amount: int = Field(gt=0)
    reason: str = "top-up"


def router(ctx: ServiceContext, cipher: CredentialCipher) -> APIRouter:
    api = APIRouter(prefix="/api/v1/accounts", tags=["accounts"])
    accounts = ctx.db[ACCOUNTS]

    async def find(account_id: str) -> dict[str, Any]:
        doc = await accounts.find_one({"_id": account_id})
        if doc is None:
            raise ApiError(404, "account_not_found", f"no account with id {account_id!r}")
        return doc

    def provider_of(provider_id: str) -> Provider:
        try:
            return ctx.registry.get(provider_id)
        except ProviderNotFoundError as exc:
            raise ApiError(400, "unknown_provider", str(exc)) from None

    def check_credit_types(provider: Provider, credit_types: list[str]) -> None:
        undeclared = sorted(set(credit_types) - set(provider.manifest.credit_types))
        if undeclared:
            raise ApiError(422, "credit_type_not_declared", f"{provider.manifest.id} does not declare credit types "
                           f"{undeclared} (declared: {', '.join(provider.manifest.credit_types)})")

    async def credentials_from(provider: Provider, raw_data: dict[str, Any], email: str | None) -> dict[str, Any]:
        try:
            return await provider.extract_account_data(raw_data, fallback_email=email)
        except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
            # The adapter's message names what is missing; it must not (and by contract does not) echo secrets.
            raise ApiError(422, "invalid_account_data", f"{provider.manifest.id}: {exc}") from None

    @api.post("", status_code=201)
    async def create_account(body: AccountCreate) -> JSONResponse:
        provider = provider_of(body.provider_id)
        check_credit_types(provider, list(body.credits))
        if any(n < 0 for n in body.credits.values()):
            raise ApiError(422, "invalid_credits", "opening credits cannot be negative")
        data = await credentials_from(provider, body.raw_data, body.email)
        account_id, now = f"acc_{new_id()}", datetime.now(UTC)
        email = data.get("email") or body.email
        doc = new_account(account_id, provider_id=body.provider_id, email=email, priority=body.priority,
                          credentials=cipher.encrypt(data.get("credentials") or {}),
                          concurrency_limit=body.concurrency_limit, now=now)
        created = AccountCreated(event_id=f"{account_id}.v1", account_id=account_id, provider_id=body.provider_id,
                                 email=email, credits=body.credits, priority=body.priority,
                                 concurrency_limit=body.concurrency_limit, occurred_at=now)
        grants = [CreditsGranted(event_id=f"{account_id}.granted.{ct}", account_id=account_id, amount=n,
                                 provider_id=body.provider_id, credit_type=ct, occurred_at=now)
                  for ct, n in sorted(body.credits.items()) if n > 0]
        doc = {**fold(doc, created), "version": 1,
               "outbox": [e.model_dump_json() for e in (created, *grants)]}
        await accounts.insert_one(doc)  # the account and its first events in one write
        await flush_outbox(ctx.db, ctx.broker, doc)
        return JSONResponse(await account_view(ctx.db, await find(account_id)), status_code=201)

    @api.get("")
    async def list_accounts(provider_id: str | None = None, status: str | None = None) -> dict[str, Any]:
        query = {k: v for k, v in {"provider_id": provider_id, "status": status}.items() if v}
        docs = await accounts.find(query).sort("created_at", -1).to_list()
        return {"items": await accounts_view(ctx.db, docs)}

    @api.get("/{account_id}")
    async def get_account(account_id: str) -> dict[str, Any]:
        return await account_view(ctx.db, await find(account_id))

    @api.get("/{account_id}/ledger")
    async def get_ledger(account_id: str, limit: int = Query(default=50, ge=1, le=500), cursor: str | None = None,
                         credit_type: str | None = None) -> dict[str, Any]:
        """Booked ledger entries, newest first, with cursor pagination."""
        await find(account_id)
        return await ledger_page(ctx.db, account_id, limit, cursor, credit_type)

    @api.patch("/{account_id}")
    async def update_account(account_id: str, body: AccountPatch) -> dict[str, Any]:
        doc = await find(account_id)
        wanted = body.model_dump(exclude_none=True, exclude={"raw_data"})
        also = None
        if body.raw_data is not None:
            data = await credentials_from(provider_of(doc["provider_id"]), body.raw_data, doc.get("email"))
            also = {"$set": {"credentials": cipher.encrypt(data.get("credentials") or {})}}

        def decide(current: dict[str, Any]) -> list[Event]:
            changes: dict[str, Any] = {k: v for k, v in wanted.items() if current.get(k) != v}
            if also:
                changes["credentials"] = "replaced"  # that it changed, never what to
            events: list[Event] = []
            if changes:
                events.append(AccountUpdated(account_id=account_id, provider_id=current["provider_id"],
                                             changes=changes))
            after = {**current, **{k: v for k, v in changes.items() if k != "credentials"}}
            move = None
            if wanted.get("enabled") is False:
                move = status_change(after, "disabled", "disabled by a person")
            elif wanted.get("enabled") is True and current.get("status") != "active":
                move = status_change(after, "active", "enabled by a person")
            elif also and current.get("status") == "auth_failed":
                move = status_change(after, "active", "credentials replaced")
            return events + ([move] if move else [])

        await record(ctx.db, ctx.broker, account_id, decide, also)
        return await account_view(ctx.db, await find(account_id))

    @api.post("/{account_id}/credits", status_code=202)
    async def grant_credits(account_id: str, body: CreditGrant) -> JSONResponse:
        """Add credits (a top-up); billing books them as a `grant` entry."""
        doc = await find(account_id)
        check_credit_types(provider_of(doc["provider_id"]), [body.credit_type])
        event = CreditsGranted(account_id=account_id, provider_id=doc["provider_id"], amount=body.amount,
                               credit_type=body.credit_type, reason=body.reason)
        await publish_event(ctx.broker, event)
        return JSONResponse({"event_id": event.event_id, "credit_type": body.credit_type, "amount": body.amount},
                            status_code=202)

    @api.post("/{account_id}/sync", status_code=202)
    async def sync(account_id: str) -> JSONResponse:
        """Read the provider's real balances; billing books each difference as an `adjustment` entry."""
        doc = await find(account_id)
        return JSONResponse(await sync_account(ctx, cipher, provider_of(doc["provider_id"]), doc), status_code=202)

    @api.delete("/{account_id}", status_code=204)
    async def delete_account(account_id: str) -> Response:
        doc = await find(account_id)
        # Published first, under a fixed id: a retried DELETE after a crash publishes a duplicate that is dropped.
        await publish_event(ctx.broker, AccountDeleted(event_id=f"{account_id}.deleted", account_id=account_id,
                                                       provider_id=doc["provider_id"]))
        await accounts.delete_one({"_id": account_id})
        return Response(status_code=204)

    return api
