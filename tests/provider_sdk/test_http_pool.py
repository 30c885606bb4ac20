"""A provider's shared HTTP client: `pixsim_provider_sdk.http_pool` makes its pool's bookkeeping linear
and its idle check cheaper, and changes nothing a provider would see: connections reused while open, a
connection it closed while idle never used again (a request on it would fail with "Server
disconnected"), and the same connections opened and closed as with httpcore's own pool."""

from __future__ import annotations

import asyncio

import httpx
from conftest import PROVIDERS
from pixsim_provider_sdk import discover, http_pool


class KeepAliveServer:
    """An HTTP/1.1 server that keeps every connection open until told to close them all."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close_all(self) -> None:
        for writer in self.writers:
            writer.close()
        for writer in self.writers:
            await writer.wait_closed()
        self.writers.clear()

    async def stop(self) -> None:
        await self.close_all()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_open_connections_are_reused_and_ones_the_provider_closed_are_not() -> None:
    server = KeepAliveServer()
    client = httpx.AsyncClient(base_url=await server.start())
    assert http_pool.quicken(client), "this httpx keeps its pool elsewhere: the quick check is not in use"
    try:
        # a burst: several connections, all kept open and idle afterwards
        assert [r.text for r in await asyncio.gather(*(client.get("/") for _ in range(8)))] == ["ok"] * 8
        opened = server.connections
        assert opened >= 2
        for _ in range(20):  # one at a time: an open idle connection is reused, none is opened
            assert (await client.get("/")).text == "ok"
        assert server.connections == opened
        # the provider closes every idle connection (a restart, an idle timeout on its side)
        await server.close_all()
        await asyncio.sleep(0.05)  # the FINs arrive
        for _ in range(3):  # each request gets a working connection, none goes out on a closed one
            assert (await client.get("/")).text == "ok"
        assert server.connections == opened + 1  # every closed one dropped; one new, then reused
    finally:
        await client.aclose()
        await server.stop()


async def connections_opened(client: httpx.AsyncClient, server: KeepAliveServer) -> tuple[int, int]:
    """A run of bursts and single calls: (connections the server saw, connections the pool keeps)."""
    for burst in (8, 1, 1, 5, 12, 1, 3, 1, 1):
        responses = await asyncio.gather(*(client.get("/") for _ in range(burst)))
        assert [r.text for r in responses] == ["ok"] * burst
    return server.connections, len(client._transport._pool.connections)  # type: ignore[attr-defined]


async def test_the_pool_opens_and_keeps_the_same_connections_as_httpcores_own() -> None:
    """Above `max_keepalive_connections`, idle connections are closed as httpcore closes them."""
    seen = []
    for quick in (False, True):
        server = KeepAliveServer()
        client = httpx.AsyncClient(
            base_url=await server.start(), limits=httpx.Limits(max_keepalive_connections=3)
        )
        if quick:
            assert http_pool.quicken(client)
        try:
            seen.append(await connections_opened(client, server))
        finally:
            await client.aclose()
            await server.stop()
    assert seen[0] == seen[1], f"httpcore's pool: {seen[0]}, ours: {seen[1]} (opened, kept)"
    assert seen[1][0] > 12  # bursts above the limit did open (and close) connections


async def test_every_provider_client_gets_the_linear_pool_and_the_quick_check() -> None:
    """Fails when httpx or httpcore changes where the pool is: look at `http_pool` again then."""
    provider = discover(PROVIDERS, include_entry_points=False).get("sim")
    try:
        pool = provider.http._transport._pool  # type: ignore[attr-defined]
        assert type(pool) is http_pool.LinearPool
        assert isinstance(pool._network_backend, http_pool.QuickCheckBackend)
    finally:
        await provider.aclose()
