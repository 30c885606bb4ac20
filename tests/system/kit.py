"""What system tests share: services as real processes (to SIGKILL, at a fault point or at will), a
dispatcher whose adapter gives up after 1 s (so a stalled answer is lost after acceptance), and the check
that a job was charged exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
from conftest import PROVIDERS, build_apps
from opentelemetry.sdk.trace import TracerProvider
from pixsim_provider_sdk import LoadedProvider, Registry, discover
from pixsim_runtime.local_servers import free_port
from support import wait_ledger

#: What a killed dispatcher's environment adds: SIGKILL itself right after the provider accepted a job.
KILLED_AFTER_ACCEPT = {"PIXSIM_FAULT_POINT": "dispatcher.after_execute"}


async def start_service(module: str, env: dict[str, str], *, ready: bool = True) -> subprocess.Popen:
    """`python -m <module>` as a real process (to SIGKILL), once its /readyz answers (unless `ready=False`)."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - a real process, to SIGKILL
        [sys.executable, "-m", module],
        env={**os.environ, **env, "PIXSIM_HTTP_PORT": str(port)},
    )
    if not ready:
        return proc
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            assert proc.poll() is None, f"{module} exited during start-up"
            await asyncio.sleep(0.05)
    raise AssertionError(f"{module} not ready")


async def killed_at_its_fault_point(proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the dispatcher never reached its fault point"
        await asyncio.sleep(0.05)
    assert proc.returncode == -signal.SIGKILL


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def impatient(provider_id: str) -> Any:
    """The provider's adapter with a 1 s HTTP timeout, its manifest attached."""
    loaded = discover(PROVIDERS, include_entry_points=False, only=[provider_id])
    manifest = loaded.manifest(provider_id)
    adapter = type("Impatient", (type(loaded.get(provider_id)),), {"http_timeout": 1.0})()
    adapter.attach_manifest(manifest)
    return adapter


def apps_with_an_impatient_dispatcher(settings: dict, provider_id: str) -> list[Any]:
    """Gateway, poller and billing, plus a dispatcher whose `provider_id` adapter gives up after 1 s."""
    from pixsim_dispatcher.app import DispatcherSettings
    from pixsim_dispatcher.app import create_app as dispatcher

    tp = TracerProvider()
    adapter = impatient(provider_id)
    registry = Registry([LoadedProvider(adapter.manifest, adapter, f"tests (impatient {provider_id})")])
    return [
        *build_apps(settings, tp, roles=("gateway", "poller", "billing")),
        dispatcher(DispatcherSettings(**settings), tracer_provider=tp, registry=registry),
    ]


async def charged_once(mongo_url: str, db: str, gid: str) -> None:
    """Reserved once and charged once. Call it while billing still runs: a job's `completed` can reach the
    read model before billing has booked its charge, so a test that stops the services first waits for a
    booking that never comes."""
    entries = await wait_ledger(mongo_url, db, gid, {"reserved", "charged"})
    assert sorted(e["kind"] for e in entries) == ["charged", "reserved"], entries
