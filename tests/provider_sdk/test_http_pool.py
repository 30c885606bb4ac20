"""A provider's shared HTTP client keeps its connections, and still notices the ones a provider closed.

The client's pool checks idle connections with `pixsim_provider_sdk.http_pool`'s quick check instead of
httpcore's (same test, cheaper way to the socket). What a provider would see: connections reused while
open, and a connection it closed while idle never used again (a request on it would fail with
"Server disconnected")."""

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


async def test_every_provider_client_gets_the_quick_check() -> None:
    provider = discover(PROVIDERS, include_entry_points=False).get("sim")
    try:
        pool = provider.http._transport._pool  # type: ignore[attr-defined]
        assert isinstance(pool._network_backend, http_pool.QuickCheckBackend)
    finally:
        await provider.aclose()
