"""The console's way to the public API: an httpx transport that runs each request through the gateway's
own ASGI app, in this process, with responses streamed as the app sends them.

So every call the console makes passes the same middleware (authentication with the user's key, rate
limits, body caps) and routes as any other client's, and Server-Sent Events and range requests stream
through unchanged. httpx's own `ASGITransport` cannot be used here: it collects the whole body before
it answers, which never happens for an event stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any
from urllib.parse import unquote

import httpx
from starlette.types import ASGIApp, Message

log = logging.getLogger(__name__)
CLOSE_GRACE_S = (
    1.0  # how long a stream the client left may clean up (delete its NATS consumer) before it is cancelled
)


class _Body(httpx.AsyncByteStream):
    def __init__(self, chunks: asyncio.Queue[bytes | None], task: asyncio.Task, gone: asyncio.Event) -> None:
        self.chunks, self.task, self.gone = chunks, task, gone

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            getter = asyncio.ensure_future(self.chunks.get())
            try:
                done, _ = await asyncio.wait({getter, self.task}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # the reader was cancelled (the browser left): no orphaned get() task
                if not getter.done():
                    getter.cancel()
            if getter not in done:  # the app ended: what it queued is all there is
                while not self.chunks.empty():
                    chunk = self.chunks.get_nowait()
                    if chunk is None:
                        return
                    yield chunk
                return
            chunk = getter.result()
            if chunk is None:
                return
            yield chunk

    async def aclose(self) -> None:
        self.gone.set()  # the app sees http.disconnect, as from a real client that went away
        if not self.task.done():
            with suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self.task), CLOSE_GRACE_S)
        if not self.task.done():
            self.task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self.task


class AppTransport(httpx.AsyncBaseTransport):
    def __init__(self, app: ASGIApp, client: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": unquote(request.url.path),
            "raw_path": request.url.raw_path.split(b"?", 1)[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": self.client,
            "server": (request.url.host, request.url.port or 80),
            "state": {},
        }
        started: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(
            maxsize=8
        )  # back-pressure: a slow reader slows the app
        gone = asyncio.Event()
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.set_result(message)
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    await chunks.put(message["body"])
                if not message.get("more_body", False):
                    await chunks.put(None)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception as exc:  # noqa: BLE001 - before the answer: the caller's error; after: the stream ends
                if not started.done():
                    started.set_exception(exc)
                else:
                    log.warning("%s %s failed while streaming: %r", request.method, request.url.path, exc)
                return
            if not started.done():
                started.set_exception(
                    RuntimeError(f"{request.method} {request.url.path}: the app sent no response")
                )

        task = asyncio.create_task(run())
        message = await started
        headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        return httpx.Response(
            message["status"], headers=headers, stream=_Body(chunks, task, gone), request=request
        )
