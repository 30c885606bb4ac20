"""Accounts and credits: status with its reason, balances, slots, the ledger by page; and, for admins
only, adding an account, top-ups, syncing with the provider, enabling and disabling."""

# No `from __future__ import annotations`: FastAPI must see the route signatures' Depends (local names).
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response

from ..bounds import ID_PATTERN
from .web import Console, ConsoleRoute, Visit

AccountId = Annotated[str, Path(pattern=ID_PATTERN)]
STATUSES = ("active", "cooling_down", "exhausted", "auth_failed", "disabled")
NOTICES = {
    "created": "Account added.",
    "topped_up": "Top-up booked; the balance follows in a moment.",
    "synced": "Balances synced with the provider.",
    "enabled": "Account enabled.",
    "disabled": "Account disabled.",
}
LEDGER_PAGE = 20


def router(console: Console) -> APIRouter:
    api = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
    Visiting = Annotated[Visit, Depends(console.visit)]
    Acting = Annotated[Visit, Depends(console.acting)]

    async def list_page(
        request: Request,
        visit: Visit,
        query: dict[str, Any],
        *,
        error: str | None = None,
        form: dict[str, str] | None = None,
        notice: str | None = None,
        status_code: int = 200,
    ) -> Response:
        status = query.get("status") if query.get("status") in STATUSES else None
        answer = await visit.get(
            "/api/v1/accounts",
            provider_id=query.get("provider_id"),
            status=status,
            cursor=query.get("cursor"),
            limit=50,
        )
        return console.page(
            request,
            "accounts.html",
            visit,
            status_code,
            accounts=answer.body.get("items", []) if answer.ok else [],
            list_error=None if answer.ok else answer.error["message"],
            next_cursor=answer.body.get("next_cursor") if answer.ok else None,
            providers=await visit.providers(),
            statuses=STATUSES,
            status=status,
            provider_id=query.get("provider_id") or "",
            error=error,
            form=form or {},
            notice=NOTICES.get(notice or ""),
        )

    @api.get("/accounts")
    async def accounts(
        request: Request,
        visit: Visiting,
        provider_id: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        notice: str | None = None,
    ) -> Response:
        return await list_page(
            request, visit, {"provider_id": provider_id, "status": status, "cursor": cursor}, notice=notice
        )

    def admins_only(request: Request, visit: Visit) -> Response | None:
        if visit.session.is_admin:
            return None
        return console.page(
            request,
            "error.html",
            visit,
            403,
            title="Admins only",
            message="Only an admin may change accounts here.",
        )

    @api.post("/accounts")
    async def create_account(request: Request, visit: Acting) -> Response:
        if refused := admins_only(request, visit):
            return refused
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            raw_data = json.loads(form.get("raw_data") or "{}")
            credits = (
                {form["credit_type"]: int(form["amount"])}
                if form.get("credit_type") and form.get("amount")
                else {}
            )
        except ValueError:
            return await list_page(
                request,
                visit,
                {},
                error="Raw data must be JSON and the amount a whole number.",
                form=form,
                status_code=422,
            )
        body: dict[str, Any] = {
            "provider_id": form.get("provider_id", ""),
            "raw_data": raw_data,
            "credits": credits,
            "shared": form.get("shared") == "on",
        }
        for name in ("email", "owner_id"):
            if form.get(name, "").strip():
                body[name] = form[name].strip()
        answer = await visit.call("POST", "/api/v1/accounts", json=body)
        if not answer.ok:
            return await list_page(
                request, visit, {}, error=answer.error["message"], form=form, status_code=answer.status
            )
        return RedirectResponse(f"/accounts/{answer.body['id']}?notice=created", status_code=303)

    async def detail_page(
        request: Request,
        visit: Visit,
        account_id: str,
        cursor: str | None = None,
        *,
        notice: str | None = None,
        error: str | None = None,
        status_code: int = 200,
    ) -> Response:
        answer = await visit.get(f"/api/v1/accounts/{account_id}")
        if not answer.ok:
            return console.page(
                request,
                "error.html",
                visit,
                answer.status,
                title="Account not found",
                message=answer.error["message"],
            )
        ledger = await visit.get(f"/api/v1/accounts/{account_id}/ledger", cursor=cursor, limit=LEDGER_PAGE)
        credit_types = next(
            (p["credit_types"] for p in await visit.providers() if p["id"] == answer.body["provider_id"]), []
        )
        return console.page(
            request,
            "account.html",
            visit,
            status_code,
            account=answer.body,
            ledger=ledger.body.get("items", []) if ledger.ok else [],
            ledger_error=None if ledger.ok else ledger.error["message"],
            next_cursor=ledger.body.get("next_cursor") if ledger.ok else None,
            cursor=cursor,
            credit_types=credit_types,
            notice=NOTICES.get(notice or ""),
            error=error,
        )

    @api.get("/accounts/{account_id}")
    async def account(
        request: Request,
        visit: Visiting,
        account_id: AccountId,
        cursor: str | None = None,
        notice: str | None = None,
    ) -> Response:
        return await detail_page(request, visit, account_id, cursor, notice=notice)

    async def act(
        request: Request,
        visit: Visit,
        account_id: str,
        method: str,
        path: str,
        done: str,
        body: dict[str, Any] | None = None,
    ) -> Response:
        if refused := admins_only(request, visit):
            return refused
        answer = await visit.call(method, f"/api/v1/accounts/{account_id}{path}", json=body)
        if not answer.ok:
            return await detail_page(
                request, visit, account_id, error=answer.error["message"], status_code=answer.status
            )
        return RedirectResponse(f"/accounts/{account_id}?notice={done}", status_code=303)

    @api.post("/accounts/{account_id}/credits")
    async def top_up(request: Request, visit: Acting, account_id: AccountId) -> Response:
        form = await request.form()
        amount = str(form.get("amount") or "").strip()
        if not amount.isdigit():
            return await detail_page(
                request,
                visit,
                account_id,
                error="The amount must be a whole number above 0.",
                status_code=422,
            )
        return await act(
            request,
            visit,
            account_id,
            "POST",
            "/credits",
            "topped_up",
            {
                "credit_type": str(form.get("credit_type") or ""),
                "amount": int(amount),
                "reason": str(form.get("reason") or "top-up")[:500] or "top-up",
            },
        )

    @api.post("/accounts/{account_id}/sync")
    async def sync(request: Request, visit: Acting, account_id: AccountId) -> Response:
        return await act(request, visit, account_id, "POST", "/sync", "synced")

    @api.post("/accounts/{account_id}/enabled")
    async def enable(request: Request, visit: Acting, account_id: AccountId) -> Response:
        enabled = (await request.form()).get("enabled") == "true"
        return await act(
            request,
            visit,
            account_id,
            "PATCH",
            "",
            "enabled" if enabled else "disabled",
            {"enabled": enabled},
        )

    return api
