"""`pixsim generate`, `status`, `list`, `events` and `cancel`: one generation's life from the command line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pixsim_client import APIConnectionError, PixSimError
from pixsim_contracts import TERMINAL_GENERATION_EVENTS as TERMINAL
from rich import box
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn
from rich.table import Column, Table

from .common import Api, fmt, out, parse_params, result_urls

POLL_INTERVAL_S = 0.5


# -- generate -------------------------------------------------------------------------------------
def follow(api: Api, generation_id: str) -> None:
    """A live progress bar fed by the SSE stream; falls back to polling if the stream drops."""
    columns = (SpinnerColumn(), TextColumn("{task.description:<12}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, console=out) as bar:
        task = bar.add_task("requested", total=1.0)
        try:
            for kind, data in api.events(generation_id):
                status = kind.removeprefix("generation.")
                if status in ("submitted", "progressed", *TERMINAL):
                    done = data.get("progress", 1.0 if status == "completed" else None)
                    label = "processing" if status == "progressed" else status
                    bar.update(task, description=label, completed=done)
                if status in TERMINAL:
                    return
        except (PixSimError, httpx.TransportError, ValueError):
            pass  # the stream dropped for good or was garbled: poll instead
        while (gen := api.call("GET", f"/generations/{generation_id}"))["status"] not in TERMINAL:
            bar.update(task, description=gen["status"], completed=gen.get("progress") or 0.0)
            time.sleep(POLL_INTERVAL_S)
        bar.update(task, description=gen["status"])


def final_state(api: Api, generation_id: str, grace_s: float = 3.0) -> dict[str, Any]:
    """The finished generation; waits briefly for its projection to catch up with the stream."""
    deadline = time.monotonic() + grace_s
    while True:
        gen = api.call("GET", f"/generations/{generation_id}")
        charged = gen["status"] != "completed" or gen["credits"].get("charged")
        settled = gen["status"] in TERMINAL and charged
        if settled or time.monotonic() > deadline:
            return gen
        time.sleep(0.1)


def report(gen: dict[str, Any], api_url: str | None = None) -> int:
    if gen["status"] == "completed":
        out.print("completed", style="green")
        for line in result_urls(gen.get("result")):
            out.print(line, soft_wrap=True, highlight=False)
        if api_url:  # PixSim's own copy (served from the provider's URL until the archiver has it)
            out.print(
                f"content: {api_url}/api/v1/generations/{gen['id']}/content", soft_wrap=True, highlight=False
            )
        out.print(f"credits charged: {fmt(gen['credits'].get('charged'))}")
        return 0
    error = gen.get("error") or {}
    detail = f": {error.get('code')}: {error.get('message')}" if error else ""
    out.print(f"{gen['status']}{detail}", style="red", soft_wrap=True)
    return 1


def generate(
    ctx: typer.Context,
    provider: Annotated[str, typer.Option("--provider", "-p", help="Provider id")] = "sim",
    operation: Annotated[
        str | None,
        typer.Option(
            "--operation", "-o", help="Operation type (default: text_to_video, image_to_video with --image)"
        ),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="Source image: a local file (uploaded first), an http(s) URL or asset://<id>; sets -P image_url"
        ),
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="Shortcut for -P prompt=...")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-P", metavar="KEY=VALUE", help="JSON value or string; repeatable"),
    ] = None,
    account: Annotated[str | None, typer.Option(help="Pin the job to this account id")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Sent as the Idempotency-Key header")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Print the id and return at once")] = False,
) -> None:
    """Request a generation and follow it to the end."""
    api: Api = ctx.obj
    params = parse_params(param or [])
    if prompt is not None:
        params["prompt"] = prompt
    if image is not None:
        remote = image.startswith(("http://", "https://", "asset://"))
        params["image_url"] = image if remote else api.upload(Path(image))
    operation = operation or ("image_to_video" if image is not None else "text_to_video")
    body = {"provider_id": provider, "operation_type": operation, "params": params, "account_id": account}
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    gen = api.call("POST", "/generations", json=body, headers=headers)
    out.print(f"generation {gen['id']} ({gen['status']})", highlight=False)
    if no_wait:
        return
    follow(api, gen["id"])
    raise typer.Exit(report(final_state(api, gen["id"]), api.base_url))


# -- reading --------------------------------------------------------------------------------------
def status(
    ctx: typer.Context,
    generation_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON")] = False,
) -> None:
    """Show one generation."""
    gen = ctx.obj.call("GET", f"/generations/{generation_id}")
    if as_json:
        typer.echo(json.dumps(gen, indent=2))
        return
    grid = Table.grid(Column(style="bold"), Column(overflow="fold"), padding=(0, 2))
    error = gen.get("error")
    rows = {
        "status": gen["status"],
        "progress": f"{(gen.get('progress') or 0):.0%}",
        "provider": f"{gen['provider_id']} / {gen['operation_type']}",
        "account": fmt(gen.get("account_id")),
        "provider job": fmt(gen.get("provider_job_id")),
        "result": "\n".join(result_urls(gen.get("result"))),
        "error": f"{error['code']}: {error['message']}" if error else "-",
        **{f"credits {k}": fmt(v) for k, v in gen["credits"].items()},
        "created": gen["created_at"],
        "updated": gen["updated_at"],
    }
    for key, value in rows.items():
        grid.add_row(key, value or "-")
    out.print(Panel(grid, title=f"generation {gen['id']}", expand=False))


def list_generations(
    ctx: typer.Context,
    status_: Annotated[str | None, typer.Option("--status", help="Only this status")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many")] = 20,
) -> None:
    """List recent generations, newest first."""
    query = {k: v for k, v in {"status": status_, "provider_id": provider, "limit": limit}.items() if v}
    page = ctx.obj.call("GET", "/generations", params=query)
    table = Table(
        Column("id", no_wrap=True),
        "status",
        "provider / operation",
        "%",
        "created (UTC)",
        box=box.SIMPLE,
        pad_edge=False,
    )
    for gen in page["items"]:
        table.add_row(
            gen["id"],
            gen["status"],
            f"{gen['provider_id']} {gen['operation_type']}",
            f"{(gen.get('progress') or 0) * 100:.0f}",
            gen["created_at"][5:19].replace("T", " "),
        )
    out.print(table)


EVENT_FIELDS = (
    "provider_id",
    "operation_type",
    "account_id",
    "provider_job_id",
    "progress",
    "result",
    "credits_reserved",
    "credits_charged",
    "error",
    "reason",
)


def events(ctx: typer.Context, generation_id: str) -> None:
    """Print the generation's events as they come, until it ends."""
    api: Api = ctx.obj
    try:
        for kind, data in api.events(generation_id):
            fields = {k: data[k] for k in EVENT_FIELDS if data.get(k) not in (None, {}, [])}
            if "prompt" in data.get("params", {}):
                fields["prompt"] = data["params"]["prompt"]
            summary = "  ".join(f"{k}={fmt(v)}" for k, v in fields.items())
            when = data.get("occurred_at", "")[:23]
            out.print(f"{when}  {kind:<30} {summary}", soft_wrap=True, highlight=False)
    except (httpx.TransportError, APIConnectionError) as exc:
        api.unreachable(exc)


def cancel(ctx: typer.Context, generation_id: str) -> None:
    """Ask to stop a generation."""
    gen = ctx.obj.call("POST", f"/generations/{generation_id}/cancel")
    out.print(f"cancel requested for {gen['id']} (status: {gen['status']})", highlight=False)
