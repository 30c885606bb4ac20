"""A cheaper idle-connection check for httpx's connection pool, used by every provider's shared client.

httpcore's pool checks each idle connection whenever it hands out a connection and whenever a response
ends: has the server closed its end? (The socket is then readable.) It reaches the socket through anyio's
stream attributes, which rebuild a table of every attribute on each call: about 28 µs per idle connection,
against 3 µs for the same `poll` on the socket itself. A provider busy enough to keep twenty connections
open paid about 1 ms of CPU per request for those checks (py-spy: 8-10 % of the dispatcher's and the
poller's CPU). Here each connection keeps its socket from the start, and the check polls it directly:
the same socket, the same test, the same answer.

The pool and its network backend are httpx/httpcore internals; if a version renames them, `quicken`
leaves the client as it is (slower, never broken), and a test says so.
"""

from __future__ import annotations

import ssl
import typing
from typing import Any

import httpcore
import httpx
from httpcore._utils import is_socket_readable


class QuickCheckBackend(httpcore.AsyncNetworkBackend):
    """Wraps a network backend: its streams answer `is_readable` from the socket they were opened on."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self.backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return QuickCheckStream(
            await self.backend.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: typing.Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return QuickCheckStream(await self.backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)


class QuickCheckStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self.stream = stream
        # TLS (even through a proxy's tunnel) wraps this same socket: kept for the stream's life
        self.socket = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return QuickCheckStream(await self.stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # httpcore's own test, on the socket kept above (None: readable)
            return is_socket_readable(self.socket)
        return self.stream.get_extra_info(info)


def quicken(client: httpx.AsyncClient) -> bool:
    """Give the client's pools (its default one and any proxy's) the quick check; False when this
    httpx has no pool where it is looked for (the client then works as it came)."""
    done = False
    for transport in (getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()):
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.AsyncNetworkBackend):
            if not isinstance(backend, QuickCheckBackend):
                pool._network_backend = QuickCheckBackend(backend)  # type: ignore[union-attr]
            done = True
    return done
