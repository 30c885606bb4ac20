"""Run a provider's fake remote API as a real HTTP server on a loopback port (standard library only).

Every provider folder ships `fake_api.py` defining `create_fake(**knobs)`, which returns an object with
`start(host, port) -> base_url`, `stop()` and `url` (normally a `JsonFakeServer` subclass). Tests start it
in-process with `load_fake(folder)(**knobs).start()`; a whole system run starts it from the command line:

    python -m pixsim_provider_sdk.testing.fake_http providers/sim --port 8100 --knob latency=2

which prints `fake <id> listening on <url>` once and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qsl, urlsplit

from .._packages import synthetic_package

log = logging.getLogger(__name__)

Handler = Callable[["FakeRequest"], "FakeResponse"]


# -- requests and responses -------------------------------------------------------------------------
class RecordedRequest(NamedTuple):
    """One request the fake received (tests assert on these). Header names are lower-cased;
    `json` is the parsed body, or None when the body was empty or not JSON; `at` is when it arrived
    (`time.monotonic()`)."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    at: float = 0.0


@dataclass
class FakeRequest:
    """What a route handler receives."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any  # parsed body, None when empty or not JSON
    params: dict[str, str]  # the route pattern's named groups
    base_url: str  # scheme://host:port as the client addressed us, for absolute URLs in responses

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def bearer_token(self) -> str | None:
        """The token of an `Authorization: Bearer <token>` header, if any."""
        scheme, _, token = (self.header("authorization") or "").partition(" ")
        return (token.strip() or None) if scheme.lower() == "bearer" else None


@dataclass
class FakeResponse:
    """What a route handler returns. Content-Length is always set by the server."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Faults after the handler ran (its effect stands): wait this long before answering (a client
    #: with a shorter timeout gives up), or close the connection without any answer.
    stall_s: float = 0.0
    drop: bool = False


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> FakeResponse:
    body = json.dumps(data).encode()
    return FakeResponse(status, body, {"Content-Type": "application/json", **(headers or {})})


def json_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> FakeResponse:
    """The common REST error shape: `{"error": {"code", "message", ...extra}}`."""
    return json_response({"error": {"code": code, "message": message, **extra}}, status, headers)


def bytes_response(
    data: bytes, content_type: str, status: int = 200, headers: dict[str, str] | None = None
) -> FakeResponse:
    """Raw bytes, e.g. a file the fake serves like a CDN."""
    return FakeResponse(status, data, {"Content-Type": content_type, **(headers or {})})


def route(method: str, pattern: str) -> Callable[[Callable], Callable]:
    """Mark a `JsonFakeServer` method as the handler of `method` on paths fully matching `pattern`
    (a regex; named groups become `request.params`)."""

    def mark(fn: Callable) -> Callable:
        fn.__fake_routes__ = [*getattr(fn, "__fake_routes__", []), (method.upper(), pattern)]
        return fn

    return mark


# -- the server -------------------------------------------------------------------------------------
class JsonFakeServer:
    """Base class of fake remote APIs: a route table, request recording and a background HTTP server.

    Subclasses declare handlers with `@route("GET", r"/v1/jobs/(?P<id>[^/]+)")`. Handlers run one at a
    time under a lock, so a fake's state needs no locking of its own. Every request is appended to
    `requests` before it is handled.
    """

    def __init__(self) -> None:
        self.url: str | None = None  # the URL it listens (or last listened) on
        self.requests: list[RecordedRequest] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        # Definition order, base classes first, so earlier routes win on overlapping patterns.
        for klass in reversed(type(self).__mro__):
            for name, attr in vars(klass).items():
                for method, pattern in getattr(attr, "__fake_routes__", []):
                    self.add_route(method, pattern, getattr(self, name))

    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(pattern), handler))

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0: a free port) in a daemon thread; return the base URL."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already listening on {self.url}")
        server = _Server((host, port), _RequestHandler)
        server.fake = self
        self._server = server
        self.url = f"http://{host}:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"fake-http {self.url}",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop listening and drop open connections (so keep-alive clients see the fake go down too)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch -----------------------------------------------------------------------------------
    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, base_url: str
    ) -> FakeResponse:
        """Route one request (target = path plus optional query string) and return the response."""
        split = urlsplit(target)
        path = split.path or "/"
        parsed = _parse_json(body, headers.get("content-type", ""))
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, parsed, time.monotonic()))
            handler, params, path_known = self._match("GET" if method == "HEAD" else method, path)
            if handler is None:
                if path_known:
                    return json_error(405, "method_not_allowed", f"{method} is not allowed on {path}")
                return json_error(404, "not_found", f"no route for {method} {path}")
            request = FakeRequest(
                method, path, dict(parse_qsl(split.query)), headers, body, parsed, params, base_url
            )
            try:
                return handler(request)
            except Exception as exc:  # a bug in the fake: answer like a real server would, and say why
                log.exception("fake handler for %s %s crashed", method, path)
                return json_error(500, "internal_error", f"fake handler crashed: {exc!r}")

    def _match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        path_known = False
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            path_known = True
            if route_method == method:
                return handler, match.groupdict(), True
        return None, {}, path_known

    def _track(self, conn: socket.socket, open_: bool) -> None:
        with self._lock:
            (self._connections.add if open_ else self._connections.discard)(conn)


def _parse_json(body: bytes, content_type: str) -> Any:
    if not body or ("json" not in content_type and body[:1] not in (b"{", b"[")):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung client must never keep the process alive
    request_queue_size = 128  # socketserver's default of 5 resets connections under a burst of jobs
    fake: JsonFakeServer


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs the adapters talk to
    disable_nagle_algorithm = True  # otherwise Nagle + delayed ACK add ~40 ms to every response
    server_version = "PixSimFake/1.0"
    timeout = 60  # idle keep-alive connections end eventually
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            self._send(json_error(400, "invalid_request", str(exc)))
            self.close_connection = True
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        host = headers.get("host") or urlsplit(self.server.fake.url or "").netloc
        response = self.server.fake.handle(self.command, self.path, headers, body, f"http://{host}")
        self._send(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit():
            raise ValueError(f"bad Content-Length {length!r}")
        return self.rfile.read(int(length))

    def _send(self, response: FakeResponse) -> None:
        if response.stall_s:
            time.sleep(response.stall_s)  # outside the fake's lock: other requests go on meanwhile
        if response.drop:
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


# -- loading a provider's fake ----------------------------------------------------------------------
def load_fake(provider_folder: str | os.PathLike[str]) -> Callable[..., JsonFakeServer]:
    """Import `<provider_folder>/fake_api.py` and return its `create_fake(**knobs)`.

    The file is imported as a submodule of a synthetic package unique to the folder, so two folders'
    fakes never collide and `fake_api.py` may use relative imports.
    """
    folder = Path(provider_folder).resolve()
    if not (folder / "fake_api.py").is_file():
        raise FileNotFoundError(f"{folder} has no fake_api.py")
    module = importlib.import_module(f"{_folder_package(folder)}.fake_api")
    create = getattr(module, "create_fake", None)
    if not callable(create):
        raise TypeError(f"{folder / 'fake_api.py'} must define a callable create_fake(**knobs)")
    return create


def provider_id_of(provider_folder: str | os.PathLike[str]) -> str:
    """The folder's manifest id; the folder name when the manifest cannot be imported."""
    folder = Path(provider_folder).resolve()
    try:
        return importlib.import_module(f"{_folder_package(folder)}.manifest").manifest.id
    except Exception:
        log.debug("cannot read the manifest id of %s", folder, exc_info=True)
        return folder.name


def _folder_package(folder: Path) -> str:
    safe = re.sub(r"\W", "_", folder.name)
    return synthetic_package(
        f"_pixsim_fake_{safe}_{hashlib.sha1(str(folder).encode()).hexdigest()[:10]}", folder
    )


# -- command line -----------------------------------------------------------------------------------
def parse_knobs(pairs: list[str]) -> dict[str, Any]:
    """`name=value` pairs; values are read as JSON when they parse (1, 0.5, null, [..]), else strings."""
    knobs: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"knob {pair!r} must look like name=value")
        try:
            knobs[name] = json.loads(raw)
        except ValueError:
            knobs[name] = raw
    return knobs


def main(argv: list[str] | None = None) -> int:
    """Start a provider folder's fake and serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m pixsim_provider_sdk.testing.fake_http",
        description="Serve a provider folder's fake remote API (fake_api.py) over HTTP.",
    )
    parser.add_argument("provider_folder", type=Path, help="e.g. providers/sim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100, help="0 picks a free port")
    parser.add_argument(
        "--knob",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a create_fake() keyword argument, repeatable (e.g. --knob latency=2)",
    )
    args = parser.parse_args(argv)
    try:
        fake = load_fake(args.provider_folder)(**parse_knobs(args.knob))
    except (TypeError, ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))

    stopping = threading.Event()
    # Handlers first, so a SIGTERM that arrives right after the "listening" line still stops cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        url = fake.start(args.host, args.port)
    except OSError as exc:
        print(f"fake: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"fake {provider_id_of(args.provider_folder)} listening on {url}", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
