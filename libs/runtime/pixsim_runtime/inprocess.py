"""Serve several service apps inside the current event loop (tests and benchmarks), on free ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from .local_servers import free_port


class ServedApp:
    def __init__(self, app: FastAPI, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()  # raises the start-up error
                raise RuntimeError("service exited during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


@asynccontextmanager
async def serve(*apps: FastAPI) -> AsyncIterator[list[ServedApp]]:
    served = [ServedApp(app, free_port()) for app in apps]
    try:
        for s in served:
            await s.start()
        yield served
    finally:
        for s in reversed(served):
            await s.stop()
