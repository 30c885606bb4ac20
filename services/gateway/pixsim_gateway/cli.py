"""`pixsim`: a command-line client of the gateway's HTTP API (`/api/v1`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from pixsim_client import APIConnectionError, APIStatusError, PixSim, PixSimError
from pixsim_contracts import TERMINAL_GENERATION_EVENTS as TERMINAL
from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn
from rich.table import Column, Table

app = typer.Typer(help="PixSim: run AI video and image generations from the command line.",
                  no_args_is_help=True, add_completion=False)
out = Console(markup=False)  # server-supplied text is shown as is, never parsed as markup
err = Console(stderr=True, markup=False)

DEFAULT_API = "http://127.0.0.1:8000"
POLL_INTERVAL_S = 0.5


LOCAL_KEY_FILE = Path(".pixsim/admin.key")  # written by `make run` on first start


def api_key(given: str | None) -> str | None:
    """The credential: --api-key / PIXSIM_API_KEY, else the key `make run` keeps in .pixsim/admin.key."""
    if given:
        return given.strip()
    try:
        return LOCAL_KEY_FILE.read_text().strip() or None
    except OSError:
        return None


class Api:
    """The gateway's HTTP API through `pixsim_client` (retries, typed errors, resumable SSE); any failure
    ends the command with exit code 2."""

    def __init__(self, base_url: str, key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = PixSim(key or "", base_url=self.base_url, max_retries=1)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.client.request(method, path, **kwargs)
        except APIStatusError as exc:
            fail(exc.code, exc.message)
        except APIConnectionError as exc:
            self.unreachable(exc.__cause__ or exc)
        return resp.json() if resp.content else None

    def events(self, generation_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The generation's Server-Sent Events as (type, data), until it ends (reconnecting if dropped)."""
        try:
            for event in self.client.generations.stream(generation_id):
                yield event.type, event.data
        except APIStatusError as exc:
            fail(exc.code, exc.message)

    def upload(self, path: Path) -> str:
        """Upload a local file; its `asset://<id>` reference."""
        try:
            return self.client.assets.upload(path).url
        except OSError as exc:
            err.print(f"error: cannot read {path}: {exc.strerror or exc}", soft_wrap=True, style="red")
            raise typer.Exit(2) from None
        except APIStatusError as exc:
            fail(exc.code, exc.message)
        except APIConnectionError as exc:
            self.unreachable(exc.__cause__ or exc)

    def unreachable(self, exc: BaseException) -> NoReturn:
        err.print(f"error: cannot reach the PixSim API at {self.base_url} ({exc.__class__.__name__}): "
                  "is PixSim running? start it with make run", soft_wrap=True)
        raise typer.Exit(2)


def fail(code: str, message: str) -> NoReturn:
    err.print(f"error: {code}: {message}", soft_wrap=True, style="red")
    raise typer.Exit(2)


def fail_response(resp: httpx.Response) -> NoReturn:
    try:
        error = resp.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{resp.status_code}", resp.text.strip() or resp.reason_phrase
    fail(code, message)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; a value is JSON when it parses (`duration=5` is an int), else a string."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="--param")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def fmt(value: Any) -> str:
    if value is None or value == {}:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def result_urls(result: dict[str, Any] | None) -> list[str]:
    return [f"{k}: {v}" for k, v in (result or {}).items() if k.endswith("_url") and v]


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
            out.print(f"content: {api_url}/api/v1/generations/{gen['id']}/content", soft_wrap=True, highlight=False)
        out.print(f"credits charged: {fmt(gen['credits'].get('charged'))}")
        return 0
    error = gen.get("error") or {}
    detail = f": {error.get('code')}: {error.get('message')}" if error else ""
    out.print(f"{gen['status']}{detail}", style="red", soft_wrap=True)
    return 1


@app.command()
def generate(
    ctx: typer.Context,
    provider: Annotated[str, typer.Option("--provider", "-p", help="Provider id")] = "sim",
    operation: Annotated[str | None, typer.Option(
        "--operation", "-o", help="Operation type (default: text_to_video, image_to_video with --image)")] = None,
    image: Annotated[str | None, typer.Option(
        help="Source image: a local file (uploaded first), an http(s) URL or asset://<id>; sets -P image_url")] = None,
    prompt: Annotated[str | None, typer.Option(help="Shortcut for -P prompt=...")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-P", metavar="KEY=VALUE",
                                                    help="JSON value or string; repeatable")] = None,
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
@app.command()
def status(ctx: typer.Context, generation_id: str,
           as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON")] = False) -> None:
    """Show one generation."""
    gen = ctx.obj.call("GET", f"/generations/{generation_id}")
    if as_json:
        typer.echo(json.dumps(gen, indent=2))
        return
    grid = Table.grid(Column(style="bold"), Column(overflow="fold"), padding=(0, 2))
    error = gen.get("error")
    rows = {"status": gen["status"], "progress": f"{(gen.get('progress') or 0):.0%}",
            "provider": f"{gen['provider_id']} / {gen['operation_type']}",
            "account": fmt(gen.get("account_id")), "provider job": fmt(gen.get("provider_job_id")),
            "result": "\n".join(result_urls(gen.get("result"))),
            "error": f"{error['code']}: {error['message']}" if error else "-",
            **{f"credits {k}": fmt(v) for k, v in gen["credits"].items()},
            "created": gen["created_at"], "updated": gen["updated_at"]}
    for key, value in rows.items():
        grid.add_row(key, value or "-")
    out.print(Panel(grid, title=f"generation {gen['id']}", expand=False))


@app.command("list")
def list_generations(
    ctx: typer.Context,
    status_: Annotated[str | None, typer.Option("--status", help="Only this status")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many")] = 20,
) -> None:
    """List recent generations, newest first."""
    query = {k: v for k, v in {"status": status_, "provider_id": provider, "limit": limit}.items() if v}
    page = ctx.obj.call("GET", "/generations", params=query)
    table = Table(Column("id", no_wrap=True), "status", "provider / operation", "%", "created (UTC)",
                  box=box.SIMPLE, pad_edge=False)
    for gen in page["items"]:
        table.add_row(gen["id"], gen["status"], f"{gen['provider_id']} {gen['operation_type']}",
                      f"{(gen.get('progress') or 0) * 100:.0f}", gen["created_at"][5:19].replace("T", " "))
    out.print(table)


EVENT_FIELDS = ("provider_id", "operation_type", "account_id", "provider_job_id", "progress", "result",
                "credits_reserved", "credits_charged", "error", "reason")


@app.command()
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


@app.command()
def providers(ctx: typer.Context,
              provider_id: Annotated[str | None, typer.Argument(help="Show this one")] = None) -> None:
    """List the installed providers, or show one provider's parameters per operation."""
    if provider_id:
        show_provider(ctx.obj.call("GET", f"/providers/{provider_id}"))
        return
    table = Table("id", "name", "kind", "operations", "credit types", "domains")
    for p in ctx.obj.call("GET", "/providers")["items"]:
        table.add_row(p["id"], p["name"], fmt(p.get("kind")), fmt(p["operations"]),
                      fmt(p.get("credit_types")), fmt(p.get("domains")))
    out.print(table)


def show_provider(p: dict[str, Any]) -> None:
    out.print(f"{p['name']} ({p['id']} {p.get('version', '')}): {p.get('description', '')}", style="bold")
    for operation, spec in p["parameter_spec"].items():
        table = Table("name", "type", "required", "default", "constraints", "description", title=operation)
        for prm in spec.get("parameters", []):
            limits = {k: prm[k] for k in ("min", "max", "enum", "max_length") if k in prm}
            table.add_row(prm["name"], prm.get("type", ""), "yes" if prm.get("required") else "",
                          fmt(prm.get("default")), fmt(limits), prm.get("description", ""))
        out.print(table)


@app.command()
def cancel(ctx: typer.Context, generation_id: str) -> None:
    """Ask to stop a generation."""
    gen = ctx.obj.call("POST", f"/generations/{generation_id}/cancel")
    out.print(f"cancel requested for {gen['id']} (status: {gen['status']})", highlight=False)


@app.callback()
def main(
    ctx: typer.Context,
    api: Annotated[str, typer.Option(envvar="PIXSIM_API_URL", help="Base URL of the gateway")] = DEFAULT_API,
    key: Annotated[str | None, typer.Option("--api-key", envvar="PIXSIM_API_KEY", show_default=False,
                                            help="PixSim API key (default: .pixsim/admin.key from make run)")] = None,
) -> None:
    ctx.obj = Api(api, api_key(key))


# `pixsim accounts ...`, `pixsim keys ...` and `pixsim provider ...` live in their own modules, which import
# the helpers above.
from .accounts_cli import app as _accounts_app
from .keys_cli import app as _keys_app
from .provider_cli import app as _provider_app

app.add_typer(_accounts_app, name="accounts")
app.add_typer(_keys_app, name="keys")
app.add_typer(_provider_app, name="provider")
