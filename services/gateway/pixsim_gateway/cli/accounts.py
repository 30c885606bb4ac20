"""`pixsim accounts ...`: list, show, add, update, sync and fund provider accounts through the gateway API.

Credentials go in through `--token`, `--raw-data` (JSON) or `--raw-file` (a JSON file, which keeps them
out of the shell history) and never come back out: the API returns none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Column, Table

from .common import Api, fmt, out

app = typer.Typer(help="Provider accounts: status, balances, slots and the ledger.", no_args_is_help=True)


def balances(view: dict[str, Any]) -> str:
    parts = []
    for credit_type, b in view.get("balances", {}).items():
        if b.get("tracked"):
            parts.append(f"{credit_type} {b['available']}/{b['balance']}")
        else:
            parts.append(f"{credit_type} ? (spent {b['spent']})")
    return ", ".join(parts) or "-"


def raw_data(token: str | None, raw: str | None, raw_file: Path | None) -> dict[str, Any] | None:
    if sum(x is not None for x in (token, raw, raw_file)) > 1:
        raise typer.BadParameter("give one of --token, --raw-data, --raw-file")
    if token is not None:
        return {"token": token}
    try:
        if raw is not None:
            return json.loads(raw)
        if raw_file is not None:
            return json.loads(raw_file.read_text())
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(f"the raw data is not readable JSON: {exc.__class__.__name__}") from None
    return None


def credits_of(pairs: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for pair in pairs:
        credit_type, sep, amount = pair.partition("=")
        if not sep or not amount.lstrip("-").isdigit():
            raise typer.BadParameter(f"expected type=amount, got {pair!r}", param_hint="--credits")
        found[credit_type] = int(amount)
    return found


@app.command("list")
def list_accounts(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Option(help="Only this provider")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status")] = None,
) -> None:
    """List accounts: status, slots in use, available/balance per credit type."""
    query = {k: v for k, v in {"provider_id": provider, "status": status}.items() if v}
    table = Table(
        Column("id", no_wrap=True),
        "provider",
        "status",
        "prio",
        "slots",
        Column("available/balance", no_wrap=True),
        box=box.SIMPLE,
        pad_edge=False,
    )
    for a in ctx.obj.call("GET", "/accounts", params=query)["items"]:
        table.add_row(
            a["id"],
            a["provider_id"],
            a["status"],
            str(a["priority"]),
            f"{a['slots_in_use']}/{a['concurrency_limit']}",
            balances(a),
        )
    out.print(table)


@app.command()
def show(
    ctx: typer.Context,
    account_id: str,
    entries: Annotated[int, typer.Option("--ledger", min=0, max=500, help="Ledger entries to show")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON")] = False,
) -> None:
    """Show one account and its newest ledger entries."""
    api: Api = ctx.obj
    view = api.call("GET", f"/accounts/{account_id}")
    ledger = (
        api.call("GET", f"/accounts/{account_id}/ledger", params={"limit": entries})["items"]
        if entries
        else []
    )
    if as_json:
        typer.echo(json.dumps({**view, "ledger": ledger}, indent=2))
        return
    status = view["status"] + (f" ({view['status_reason']})" if view.get("status_reason") else "")
    out.print(
        f"{view['id']}  {view['provider_id']}  {view.get('email') or ''}", style="bold", highlight=False
    )
    out.print(f"status: {status} since {view.get('status_since')}", soft_wrap=True, highlight=False)
    if view.get("cooldown_until"):
        out.print(f"cooling down until {view['cooldown_until']}", highlight=False)
    out.print(
        f"priority {view['priority']}, slots {view['slots_in_use']}/{view['concurrency_limit']}, "
        f"enabled {view['enabled']}",
        highlight=False,
    )
    table = Table("credit type", "balance", "reserved", "available", "spent", box=box.SIMPLE, pad_edge=False)
    for credit_type, b in view["balances"].items():
        table.add_row(
            credit_type, fmt(b["balance"]), str(b["reserved"]), fmt(b["available"]), str(b["spent"])
        )
    out.print(table)
    if ledger:
        rows = Table(
            "booked (UTC)",
            "kind",
            "type",
            "amount",
            "balance",
            "generation / reason",
            box=box.SIMPLE,
            pad_edge=False,
        )
        for e in ledger:
            rows.add_row(
                e["booked_at"][:19].replace("T", " "),
                e["kind"],
                e["credit_type"],
                str(e["amount"]),
                f"{e['balance_change']:+d}",
                e.get("generation_id") or e.get("reason") or "-",
            )
        out.print(rows)


@app.command()
def add(
    ctx: typer.Context,
    provider: Annotated[str, typer.Option("--provider", "-p", help="Provider id")],
    token: Annotated[str | None, typer.Option(help="An API key or session token")] = None,
    raw: Annotated[
        str | None, typer.Option("--raw-data", help="What a browser extension captured (JSON)")
    ] = None,
    raw_file: Annotated[Path | None, typer.Option(help="The same, from a JSON file")] = None,
    email: Annotated[str | None, typer.Option(help="The account's e-mail")] = None,
    credit: Annotated[
        list[str] | None,
        typer.Option("--credits", "-c", metavar="TYPE=AMOUNT", help="Opening balance; repeatable"),
    ] = None,
    priority: Annotated[int, typer.Option(help="Higher is chosen first")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs at once")] = 1,
) -> None:
    """Add an account (its credentials are stored encrypted, never shown)."""
    data = raw_data(token, raw, raw_file)
    if data is None:
        raise typer.BadParameter("give the credentials: --token, --raw-data or --raw-file")
    body = {
        "provider_id": provider,
        "raw_data": data,
        "email": email,
        "credits": credits_of(credit or []),
        "priority": priority,
        "concurrency_limit": concurrency,
    }
    view = ctx.obj.call("POST", "/accounts", json=body)
    out.print(f"account {view['id']} added ({view['status']})", highlight=False)


@app.command()
def update(
    ctx: typer.Context,
    account_id: str,
    priority: Annotated[int | None, typer.Option(help="Higher is chosen first")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Jobs at once")] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable", help="Take jobs or not")] = None,
    token: Annotated[str | None, typer.Option(help="New credentials: a token")] = None,
    raw: Annotated[str | None, typer.Option("--raw-data", help="New credentials (JSON)")] = None,
    raw_file: Annotated[Path | None, typer.Option(help="New credentials, from a JSON file")] = None,
) -> None:
    """Change priority, concurrency, enabled, or the credentials (which revives a rejected account)."""
    body = {
        k: v
        for k, v in {
            "priority": priority,
            "concurrency_limit": concurrency,
            "enabled": enabled,
            "raw_data": raw_data(token, raw, raw_file),
        }.items()
        if v is not None
    }
    if not body:
        raise typer.BadParameter("nothing to change")
    view = ctx.obj.call("PATCH", f"/accounts/{account_id}", json=body)
    out.print(
        f"account {view['id']}: {view['status']}, priority {view['priority']}, "
        f"concurrency {view['concurrency_limit']}",
        highlight=False,
    )


@app.command()
def sync(ctx: typer.Context, account_id: str) -> None:
    """Ask the provider for the real balances; billing books any difference as an adjustment."""
    result = ctx.obj.call("POST", f"/accounts/{account_id}/sync")
    out.print(f"provider reports {fmt(result['reported'])}", highlight=False)
