"""`/api/v1/accounts`: add browser-captured or API-key accounts; read, change, fund, sync and remove them.

Every change is an account event (`pixsim_runtime.accounts.record`); opening credits and top-ups are
`credits.granted` events and a sync is a `credits.synced` event, all booked by billing. Credentials
are encrypted before they are stored and never leave in a response, an event or a log line:
responses are built from an allow-list of fields (`accounts_views`).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from pixsim_contracts import (
    AccountCreated,
    AccountDeleted,
    AccountUpdated,
    CreditsGranted,
    Event,
    new_id,
)
from pixsim_provider_sdk import Provider
from pixsim_runtime import outbox
from pixsim_runtime.accounts import ACCOUNTS, flush_outbox, fold, new_account, record, status_change
from pixsim_runtime.broker import publish_event
from pixsim_runtime.requests import find_provider
from pixsim_runtime.secrets import CredentialCipher
from pixsim_runtime.service import ServiceContext
from pydantic import BaseModel, ConfigDict, Field

from ..auth import Caller, Principal, require_admin
from ..bounds import (
    ID_PATTERN,
    MAX_CREDITS,
    Count,
    Credits,
    CreditType,
    Cursor,
    Email,
    JsonObject,
    Priority,
    ProviderId,
    Text,
    UserId,
)
from ..errors import ApiError, responses
from . import cursors
from .accounts_sync import sync_account
from .accounts_views import account_view, accounts_view, ledger_page
from .owned import find_owned

AccountId = Annotated[str, Path(pattern=ID_PATTERN, description="The account's id")]


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_id: ProviderId
    raw_data: JsonObject = Field(description="What the browser extension captured (cookies, tokens, keys)")
    email: Email | None = None
    credits: dict[CreditType, Credits] = Field(
        default_factory=dict, max_length=32, description="Opening balance per credit type"
    )
    priority: Priority = 0
    concurrency_limit: Count = 1
    owner_id: UserId | None = Field(default=None, description="Admins only: the user who owns the account")
    shared: bool = Field(
        default=False, description="Admins only: runs every user's jobs, not only the owner's"
    )


class AccountPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: Priority | None = None
    concurrency_limit: Count | None = None
    enabled: bool | None = Field(
        default=None, description="false disables; true also revives a failed account"
    )
    raw_data: JsonObject | None = Field(default=None, description="New credentials (a fresh browser capture)")
    shared: bool | None = Field(default=None, description="Admins only")


class CreditGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credit_type: CreditType
    amount: int = Field(strict=True, gt=0, le=MAX_CREDITS)
    reason: Text = "top-up"


def router(ctx: ServiceContext, cipher: CredentialCipher) -> APIRouter:
    api = APIRouter(prefix="/api/v1/accounts", tags=["accounts"], responses=responses(400, 401, 422, 429))
    accounts = ctx.db[ACCOUNTS]

    find = functools.partial(
        find_owned, accounts, owner_field="owner_id", code="account_not_found", noun="account"
    )

    def provider_of(provider_id: str) -> Provider:
        return find_provider(ctx.registry, provider_id)

    def check_credit_types(provider: Provider, credit_types: list[str]) -> None:
        undeclared = sorted(set(credit_types) - set(provider.manifest.credit_types))
        if undeclared:
            raise ApiError(
                422,
                "credit_type_not_declared",
                f"{provider.manifest.id} does not declare credit types "
                f"{undeclared} (declared: {', '.join(provider.manifest.credit_types)})",
            )

    def guard_shared(doc: dict[str, Any], principal: Principal) -> None:
        """A shared account runs everyone's jobs: only admins change it, top it up, sync or delete it."""
        if doc.get("shared") and not principal.is_admin:
            raise ApiError(403, "admin_only", "only an admin may change a shared account")

    async def credentials_from(
        provider: Provider, raw_data: dict[str, Any], email: str | None
    ) -> dict[str, Any]:
        try:
            return await provider.extract_account_data(raw_data, fallback_email=email)
        except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
            # The adapter's message names what is missing; it must not (and by contract does not) echo secrets.
            raise ApiError(422, "invalid_account_data", f"{provider.manifest.id}: {exc}"[:2000]) from None

    @api.post("", status_code=201, responses=responses(400, 403, 413))
    async def create_account(principal: Caller, body: AccountCreate) -> JSONResponse:
        if (body.shared or body.owner_id not in (None, principal.user_id)) and not principal.is_admin:
            raise ApiError(
                403, "admin_only", "only an admin may create a shared account or one for another user"
            )
        provider = provider_of(body.provider_id)
        check_credit_types(provider, list(body.credits))
        data = await credentials_from(provider, body.raw_data, body.email)
        account_id, now = f"acc_{new_id()}", datetime.now(UTC)
        email = str(data.get("email") or body.email or "")[:254] or None
        owner = body.owner_id or principal.user_id
        doc = new_account(
            account_id,
            provider_id=body.provider_id,
            email=email,
            priority=body.priority,
            credentials=cipher.encrypt(data.get("credentials") or {}),
            concurrency_limit=body.concurrency_limit,
            now=now,
            owner_id=owner,
            shared=body.shared,
        )
        created = AccountCreated(
            event_id=f"{account_id}.v1",
            account_id=account_id,
            provider_id=body.provider_id,
            email=email,
            credits=body.credits,
            priority=body.priority,
            concurrency_limit=body.concurrency_limit,
            occurred_at=now,
            owner_id=owner,
            shared=body.shared,
        )
        grants = [
            CreditsGranted(
                event_id=f"{account_id}.granted.{ct}",
                account_id=account_id,
                amount=n,
                provider_id=body.provider_id,
                credit_type=ct,
                occurred_at=now,
            )
            for ct, n in sorted(body.credits.items())
            if n > 0
        ]
        doc = {
            **fold(doc, created),
            "version": 1,
            "outbox": outbox.encode((created, *grants)),
        }
        await accounts.insert_one(doc)  # the account and its first events in one write
        await flush_outbox(ctx.db, ctx.broker, doc)
        return JSONResponse(await account_view(ctx.db, await find(account_id, principal)), status_code=201)

    @api.get("", responses=responses(400))
    async def list_accounts(
        principal: Caller,
        provider_id: ProviderId | None = None,
        status: Literal["active", "cooling_down", "exhausted", "auth_failed", "disabled"] | None = None,
        owner_id: Annotated[UserId | None, Query(description="Admins only: this user's accounts")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Cursor | None = None,
    ) -> dict[str, Any]:
        """The caller's accounts (an admin's: everyone's), newest first, with cursor pagination."""
        owner = owner_id if principal.is_admin else principal.user_id
        query: dict[str, Any] = {
            k: v for k, v in {"provider_id": provider_id, "status": status, "owner_id": owner}.items() if v
        }
        if cursor:
            query["_id"] = {"$lt": cursors.decode("account", cursor, str)}
        docs = await accounts.find(query).sort("_id", -1).limit(limit + 1).to_list()
        page = docs[:limit]
        more = len(docs) > limit and page
        return {
            "items": await accounts_view(ctx.db, page),
            "next_cursor": cursors.encode("account", page[-1]["_id"]) if more else None,
        }

    @api.get("/{account_id}", responses=responses(404))
    async def get_account(principal: Caller, account_id: AccountId) -> dict[str, Any]:
        return await account_view(ctx.db, await find(account_id, principal))

    @api.get("/{account_id}/ledger", responses=responses(400, 404))
    async def get_ledger(
        principal: Caller,
        account_id: AccountId,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Cursor | None = None,
        credit_type: CreditType | None = None,
    ) -> dict[str, Any]:
        """Booked ledger entries, newest first, with cursor pagination."""
        await find(account_id, principal)
        return await ledger_page(ctx.db, account_id, limit, cursor, credit_type)

    @api.patch("/{account_id}", responses=responses(400, 403, 404, 413))
    async def update_account(principal: Caller, body: AccountPatch, account_id: AccountId) -> dict[str, Any]:
        doc = await find(account_id, principal)
        guard_shared(doc, principal)
        if body.shared is not None:
            require_admin(principal)
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
                events.append(
                    AccountUpdated(account_id=account_id, provider_id=current["provider_id"], changes=changes)
                )
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
        return await account_view(ctx.db, await find(account_id, principal))

    @api.post("/{account_id}/credits", status_code=202, responses=responses(400, 403, 404, 413))
    async def grant_credits(principal: Caller, body: CreditGrant, account_id: AccountId) -> JSONResponse:
        """Add credits (a top-up); billing books them as a `grant` entry. Shared accounts: admins only."""
        doc = await find(account_id, principal)
        guard_shared(doc, principal)
        check_credit_types(provider_of(doc["provider_id"]), [body.credit_type])
        event = CreditsGranted(
            account_id=account_id,
            provider_id=doc["provider_id"],
            amount=body.amount,
            credit_type=body.credit_type,
            reason=body.reason,
        )
        await publish_event(ctx.broker, event)
        return JSONResponse(
            {"event_id": event.event_id, "credit_type": body.credit_type, "amount": body.amount},
            status_code=202,
        )

    @api.post("/{account_id}/sync", status_code=202, responses=responses(400, 403, 404, 409, 502))
    async def sync(principal: Caller, account_id: AccountId) -> JSONResponse:
        """Read the provider's real balances; billing books each difference as an `adjustment` entry."""
        doc = await find(account_id, principal)
        guard_shared(doc, principal)
        return JSONResponse(
            await sync_account(ctx, cipher, provider_of(doc["provider_id"]), doc), status_code=202
        )

    @api.delete("/{account_id}", status_code=204, responses=responses(403, 404))
    async def delete_account(principal: Caller, account_id: AccountId) -> Response:
        doc = await find(account_id, principal)
        guard_shared(doc, principal)
        # Published first, under a fixed id: a retried DELETE after a crash publishes a duplicate that is dropped.
        await publish_event(
            ctx.broker,
            AccountDeleted(
                event_id=f"{account_id}.deleted", account_id=account_id, provider_id=doc["provider_id"]
            ),
        )
        await accounts.delete_one({"_id": account_id})
        return Response(status_code=204)

    return api
