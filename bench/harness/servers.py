"""The servers every scenario needs: nats-server and nx-27017 on free loopback ports
(`pixsim_runtime.local_servers`, as the tests and `make run` start them), and the sim fake.

Never the fixed ports of `make run` (4222, 27017, 8000...): a bench may run beside a `make run`.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pixsim_runtime import local_servers

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
PROVIDERS = REPO / "providers"


@dataclass
class Fake:
    """The sim provider's fake remote API: its own process (like `make run`), or a thread in this one."""

    url: str
    pid: int
    stop: Callable[[], None]

    async def jobs(self) -> dict[str, Any]:
        """Every job with its status-call times (`bench/sim_fake.py`'s `/_bench/jobs`)."""
        async with httpx.AsyncClient(timeout=120) as client:
            return (await client.get(f"{self.url}/_bench/jobs")).json()


def start_fake(latency: float = 0.0, backlog: int = 128, inprocess: bool = False) -> Fake:
    """The fake with `latency` as its default job duration; `backlog`: its listen backlog (see sim_fake.py)."""
    if inprocess:
        from pixsim_provider_sdk.testing.fake_http import load_fake
        from sim_fake import StatusCalls, set_backlog

        set_backlog(backlog)
        fake = load_fake(PROVIDERS / "sim")(latency=latency)
        StatusCalls(fake)
        return Fake(fake.start("127.0.0.1", 0), os.getpid(), fake.stop)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(BENCH / "sim_fake.py"),
            str(backlog),
            str(PROVIDERS / "sim"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--knob",
            f"latency={latency}",
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            break
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"the sim fake did not start: {line!r}")

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    return Fake(line.rsplit("listening on ", 1)[1].strip(), proc.pid, stop)


@dataclass
class Servers:
    """nats-server (authorization on, fresh passwords), nx-27017 and the sim fake."""

    nats: local_servers.LocalServer
    mongo: local_servers.LocalServer
    fake: Fake

    @property
    def pids(self) -> dict[str, int]:
        pids = {"nats_server": self.nats.proc.pid, "nx_27017": self.mongo.proc.pid}
        if self.fake.pid != os.getpid():
            pids["sim_fake"] = self.fake.pid
        return pids

    def stop(self) -> None:
        self.fake.stop()
        for server in (self.mongo, self.nats):
            server.stop()


def start_servers(
    *,
    fake_latency: float = 0.0,
    fake_backlog: int = 128,
    fake_inprocess: bool = False,
    data_dir: Path | None = None,
) -> Servers:
    """`data_dir`: keep the NATS store and the MongoDB file there (as `make run` does); None: temporary
    NATS store and an in-memory MongoDB (as the tests do)."""
    nats_srv = local_servers.start_nats(store_dir=data_dir / "nats" if data_dir else None)
    try:
        mongo_srv = local_servers.start_mongo(db_path=data_dir / "mongo.db" if data_dir else None)
    except BaseException:
        nats_srv.stop()
        raise
    try:
        fake = start_fake(fake_latency, fake_backlog, fake_inprocess)
    except BaseException:
        mongo_srv.stop()
        nats_srv.stop()
        raise
    return Servers(nats_srv, mongo_srv, fake)
