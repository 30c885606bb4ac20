"""`pixsim providers [ID]`: the installed providers, or one provider's parameters, from the gateway API.

`pixsim provider new`: a new provider folder or package from the SDK's templates
(pixsim_provider_sdk.scaffold). It works offline: nothing in it calls the gateway."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pixsim_provider_sdk.scaffold import ScaffoldError, new_provider
from rich.table import Table

from .common import err, fmt, out

app = typer.Typer(help="Provider plugins: start a new one.", no_args_is_help=True)


class Kind(StrEnum):
    video = "video"
    image = "image"
    both = "both"


@app.command("new")
def new(
    provider_id: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="The provider's id: lower-case letters, digits, '-' and '_', starting with a letter",
        ),
    ],
    kind: Annotated[Kind, typer.Option(help="What it generates")] = Kind.video,
    package: Annotated[
        bool,
        typer.Option(
            "--package",
            help="A pip-installable package with the "
            "pixsim.providers entry point, instead of a providers/ folder",
        ),
    ] = False,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", show_default=False, help="Where to write it (default: providers, or . with --package)"
        ),
    ] = None,
) -> None:
    """Write a provider (manifest, adapter, fake API, tests) that passes the conformance suite and runs
    generations against its fake as it is; then fill in each TODO(provider author)."""
    try:
        target = new_provider(provider_id, kind.value, package=package, directory=directory)
    except ScaffoldError as exc:
        err.print(f"error: {exc}", soft_wrap=True, style="red")
        raise typer.Exit(2) from None
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    out.print(f"wrote {target}/: {', '.join(files)}", soft_wrap=True, highlight=False)
    out.print(
        f'next: fill in each TODO(provider author): grep -rn "TODO(provider author)" {target}',
        soft_wrap=True,
        highlight=False,
    )
    if package:
        out.print(
            f"      cd {target} && pip install -e '.[test]' && pytest tests", soft_wrap=True, highlight=False
        )
    else:
        out.print(
            f"      uv run pytest {target} tests/providers/test_conformance.py -k {target.name}",
            soft_wrap=True,
            highlight=False,
        )
        out.print(f"      make docs   # adds {provider_id} to the README's provider table", highlight=False)
    out.print("guide: docs/adding-providers.md", highlight=False)


def providers(
    ctx: typer.Context, provider_id: Annotated[str | None, typer.Argument(help="Show this one")] = None
) -> None:
    """List the installed providers, or show one provider's parameters per operation."""
    if provider_id:
        show_provider(ctx.obj.call("GET", f"/providers/{provider_id}"))
        return
    table = Table("id", "name", "kind", "operations", "credit types", "domains")
    for p in ctx.obj.call("GET", "/providers")["items"]:
        table.add_row(
            p["id"],
            p["name"],
            fmt(p.get("kind")),
            fmt(p["operations"]),
            fmt(p.get("credit_types")),
            fmt(p.get("domains")),
        )
    out.print(table)


def show_provider(p: dict[str, Any]) -> None:
    out.print(f"{p['name']} ({p['id']} {p.get('version', '')}): {p.get('description', '')}", style="bold")
    for operation, spec in p["parameter_spec"].items():
        table = Table("name", "type", "required", "default", "constraints", "description", title=operation)
        for prm in spec.get("parameters", []):
            limits = {k: prm[k] for k in ("min", "max", "enum", "max_length") if k in prm}
            table.add_row(
                prm["name"],
                prm.get("type", ""),
                "yes" if prm.get("required") else "",
                fmt(prm.get("default")),
                fmt(limits),
                prm.get("description", ""),
            )
        out.print(table)
