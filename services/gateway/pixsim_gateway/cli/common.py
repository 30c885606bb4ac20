"""What every `pixsim` command shares: the API client that ends the command on any failure, the two
consoles, and the formatting of values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import typer
from pixsim_client import APIConnectionError, APIStatusError, PixSim
from rich.console import Console

out = Console(markup=False)  # server-supplied text is shown as is, never parsed as markup
err = Console(stderr=True, markup=False)

DEFAULT_API = "http://127.0.0.1:8000"


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
        err.print(
            f"error: cannot reach the PixSim API at {self.base_url} ({exc.__class__.__name__}): "
            "is PixSim running? start it with make run",
            soft_wrap=True,
        )
        raise typer.Exit(2)


def fail(code: str, message: str) -> NoReturn:
    err.print(f"error: {code}: {message}", soft_wrap=True, style="red")
    raise typer.Exit(2)


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
