"""`pixsim`: a command-line client of the gateway's HTTP API (`/api/v1`).

Each command group is a module here; this one only assembles them into the `pixsim` app."""

from __future__ import annotations

from typing import Annotated

import typer

from . import accounts, generations, keys, providers
from .common import DEFAULT_API, Api, api_key, parse_params

app = typer.Typer(
    help="PixSim: run AI video and image generations from the command line.",
    no_args_is_help=True,
    add_completion=False,
)


def main(
    ctx: typer.Context,
    api: Annotated[str, typer.Option(envvar="PIXSIM_API_URL", help="Base URL of the gateway")] = DEFAULT_API,
    key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="PIXSIM_API_KEY",
            show_default=False,
            help="PixSim API key (default: .pixsim/admin.key from make run)",
        ),
    ] = None,
) -> None:
    ctx.obj = Api(api, api_key(key))


app.callback()(main)
app.command()(generations.generate)
app.command()(generations.status)
app.command("list")(generations.list_generations)
app.command()(generations.events)
app.command()(providers.providers)
app.command()(generations.cancel)
app.add_typer(accounts.app, name="accounts")
app.add_typer(keys.app, name="keys")
app.add_typer(providers.app, name="provider")

__all__ = ["Api", "app", "parse_params"]
