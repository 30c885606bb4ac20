"""Linear bookkeeping for httpx's connection pool, used by every provider's shared client.

httpcore's pool walks its connections whenever it hands one out and whenever a response ends, and two
parts of that walk grow with the number of idle connections a busy provider keeps (one per concurrent
call: up to the poller's 50 concurrent polls):
- **A quadratic count.** For each idle connection it counts all connections by building a list of them
  (`len([c.is_idle() for c in connections])`, which is just `len(connections)`): n² calls per walk.
- **A costly check.** Has the server closed an idle connection? (Its socket is then readable.) It
  reaches the socket through anyio's stream attributes, which rebuild a table of every attribute on each
  call: about 28 µs, against 3 µs for the same `poll` on the socket itself.
Measured in one process, client and local server together, CPU per request: 0.9-1.2 ms with one idle
connection, 1.4-1.8 ms with 20 and 3.0-5.0 ms with 50; with both fixed, 0.9-1.6 ms with 20 and 1.1-1.6 ms
with 50 (the quadratic count is most of it). Here `LinearPool` counts once (the same number, the same
decisions), and each connection keeps its socket from the start and polls it directly (the same socket,
the same test, the same answer).

Both are httpcore internals, fixed against httpcore 1.0.9 (the latest): for any other version `quicken`
leaves the client as it came (slower, never broken), and `tests/provider_sdk/test_http_pool.py` fails so
that someone looks again.
"""

from __future__ import annotations

import ssl
import typing
from typing import Any

import httpcore
import httpx
from httpcore._async.interfaces import AsyncConnectionInterface
from httpcore._utils import is_socket_readable

#: The httpcore whose `_assign_requests_to_connections` `LinearPool` repeats (with one line changed).
FIXED_FOR = "1.0.9"


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


class LinearPool(httpcore.AsyncConnectionPool):
    """httpcore 1.0.9's pool, with its surplus-idle test counting the connections once per check instead
    of walking them all: `len(self._connections)` is what the original's list comprehension measures."""

    def _assign_requests_to_connections(self) -> list[AsyncConnectionInterface]:
        # httpcore 1.0.9's method (BSD-3-Clause, Encode OSS Ltd.), its comments shortened, two
        # branches with the same body joined; one line changed
        closing_connections = []
        for connection in list(self._connections):  # closed, expired, or surplus idle connections
            if connection.is_closed():
                self._connections.remove(connection)
            elif connection.has_expired() or (
                connection.is_idle()
                and len(self._connections) > self._max_keepalive_connections  # the changed line
            ):
                self._connections.remove(connection)
                closing_connections.append(connection)

        queued_requests = [request for request in self._requests if request.is_queued()]
        for pool_request in queued_requests:
            origin = pool_request.request.url.origin
            available_connections = [
                connection
                for connection in self._connections
                if connection.can_handle_request(origin) and connection.is_available()
            ]
            idle_connections = [connection for connection in self._connections if connection.is_idle()]
            if available_connections:  # reuse one
                connection = available_connections[0]
                pool_request.assign_to_connection(connection)
            elif len(self._connections) < self._max_connections:  # open one
                connection = self.create_connection(origin)
                self._connections.append(connection)
                pool_request.assign_to_connection(connection)
            elif idle_connections:  # close an idle one and open one
                connection = idle_connections[0]
                self._connections.remove(connection)
                closing_connections.append(connection)
                connection = self.create_connection(origin)
                self._connections.append(connection)
                pool_request.assign_to_connection(connection)
        return closing_connections


def quicken(client: httpx.AsyncClient) -> bool:
    """Give the client's own pool (not a proxy's) the linear bookkeeping and the quick check; False when
    this httpcore is not the one they were written for (the client then works as it came)."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if httpcore.__version__ != FIXED_FOR or type(pool) not in (httpcore.AsyncConnectionPool, LinearPool):
        return False
    backend = pool._network_backend
    if not isinstance(backend, QuickCheckBackend):
        pool._network_backend = QuickCheckBackend(backend)
    pool.__class__ = LinearPool  # the same object, its walk replaced: nothing else about it changes
    return True
