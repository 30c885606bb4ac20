"""`pixsim keys ...`: create (admins), list and revoke PixSim API keys through the gateway API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table

from .cli import fmt, out

app = typer.Typer(help="PixSim API keys: create (admins), list, revoke.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="What the key is for")],
    owner: Annotated[str | None, typer.Option(help="The user the key acts as (default: you)")] = None,
    role: Annotated[str, typer.Option(help="user or admin")] = "user",
    rate: Annotated[float | None, typer.Option(help="Requests per second for this key")] = None,
    max_in_flight: Annotated[int | None, typer.Option(help="Generations in flight for this key")] = None,
) -> None:
    """Create a key (admins only). The token is printed once: keep it, PixSim stores only its hash."""
    limits = {k: v for k, v in {"rate": rate, "max_in_flight": max_in_flight}.items() if v is not None}
    body = {"name": name, "role": role, "limits": limits, **({"owner": owner} if owner else {})}
    key = ctx.obj.call("POST", "/keys", json=body)
    out.print(f"key {key['id']} for {key['owner']} ({key['role']}): {key['token']}", highlight=False)
    out.print("this is the only time the token is shown", highlight=False)


@app.command("list")
def list_keys(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option(help="Admins: only this user's keys")] = None,
) -> None:
    """Your keys (an admin sees everyone's)."""
    page = ctx.obj.call("GET", "/keys", params={"owner": owner} if owner else None)
    table = Table("id", "name", "owner", "role", "created", "last used", "revoked", box=box.SIMPLE)
    for k in page["items"]:
        table.add_row(
            k["id"],
            k["name"],
            k["owner"],
            k["role"],
            fmt(k["created_at"]),
            fmt(k["last_used_at"]),
            fmt(k["revoked_at"]),
        )
    out.print(table)


@app.command("revoke")
def revoke(ctx: typer.Context, key_id: str) -> None:
    """Revoke a key: it stops working at once."""
    key = ctx.obj.call("DELETE", f"/keys/{key_id}")
    out.print(f"key {key['id']} ({key['name']}) revoked", highlight=False)
