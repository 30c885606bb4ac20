"""`pixsim keys ...`: create (admins), list and revoke PixSim API keys through the gateway API."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import out

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
    for k in page["items"]:  # one line per key: the full id stays copyable on a narrow terminal
        state = "REVOKED" if k["revoked"] else f"last used {minute(k['last_used_at'])}"
        out.print(
            f"{k['id']}  {k['role']:<5}  {k['owner']}  {k['name']!r}  created {minute(k['created_at'])}, "
            f"{state}",
            highlight=False,
            soft_wrap=True,
        )


def minute(iso: str | None) -> str:
    """`2026-11-27T02:45:01.63+00:00` -> `2026-11-27 02:45` (UTC)."""
    return iso[:16].replace("T", " ") if iso else "-"


@app.command("revoke")
def revoke(ctx: typer.Context, key_id: str) -> None:
    """Revoke a key: it stops working at once."""
    key = ctx.obj.call("DELETE", f"/keys/{key_id}")
    out.print(f"key {key['id']} ({key['name']}) revoked", highlight=False)
