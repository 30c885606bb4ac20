"""The processes of a chaos run, each on a free loopback port fixed for the whole run, so it can be killed and
started again where its clients expect it: nats-server (JetStream, file store, authorization on), the
MongoDB wire server nx-27017 (on a file), the sim fake (`chaos.fake`), and the services, started by
command like `make run` does (`python -m pixsim_<name>`), one process per replica.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from pixsim_gateway.api_keys import new_token
from pixsim_provider_sdk.safe_fetch import allow_in_env
from pixsim_runtime import local_servers
from pixsim_runtime.bus_auth import BusCredentials
from pixsim_runtime.secrets import cipher_from_env
from pixsim_runtime.streams import declare_streams

REPO = Path(__file__).resolve().parents[1]
DB_NAME = "pixsim_chaos"
#: replica name -> module; two replicas of the dispatcher and the poller share their durable consumers.
SERVICES = {
    "gateway": "pixsim_gateway",
    "billing": "pixsim_billing",
    "dispatcher-1": "pixsim_dispatcher",
    "dispatcher-2": "pixsim_dispatcher",
    "poller-1": "pixsim_poller",
    "poller-2": "pixsim_poller",
}
READY_TIMEOUT_S = 240.0  # generous: a shared 2-core machine can take minutes to start six Python processes


def say(text: str) -> None:
    print(f"[chaos] {text}", flush=True)


@dataclass
class Process:
    """A service replica or the fake: a command with a fixed port, its output appended to one log."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                env={**self.env, "PIXSIM_HTTP_PORT": str(self.port)},
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def send(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        self.send(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    async def wait_ready(self, path: str = "/readyz", timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds until `path` answered 200."""
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() - started < timeout:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode} (log: {self.log})")
                try:
                    if (await client.get(f"{self.url}{path}")).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s (log: {self.log})")


@dataclass
class Cluster:
    data: Path
    fake_knobs: dict[str, Any]
    service_env: dict[str, str] = field(default_factory=dict)  # extra settings for every service
    nats_port: int = field(default_factory=local_servers.free_port)
    mongo_port: int = field(default_factory=local_servers.free_port)
    admin_key: str = field(default_factory=lambda: new_token().token)
    nats: local_servers.LocalServer | None = None
    mongo: local_servers.LocalServer | None = None
    fake: Process | None = None
    services: dict[str, Process] = field(default_factory=dict)
    _workdirs: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.data / "logs").mkdir(parents=True, exist_ok=True)
        self.credentials = BusCredentials.ensure(self.data / "nats-credentials")

    @property
    def gateway_url(self) -> str:
        return self.services["gateway"].url

    async def nats_connect(self, user: str, **options: Any) -> nats.NATS:
        """A NATS connection as `user` (its password, its own reply inboxes)."""
        return await nats.connect(
            f"nats://127.0.0.1:{self.nats_port}", **self.credentials.connect_options(user), **options
        )

    @property
    def mongo_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/?directConnection=true"

    # -- start and stop everything --------------------------------------------------------------------
    async def start(self) -> None:
        self.start_nats()
        nc = await self.nats_connect("setup", max_reconnect_attempts=0)
        try:
            await declare_streams(nc.jetstream())  # as `make run` does, before any service
        finally:
            await nc.close()
        self.start_mongo()
        self._start_fake()
        env = self._env()
        for name, module in SERVICES.items():
            self.services[name] = Process(
                name,
                [sys.executable, "-m", module],
                env,
                local_servers.free_port(),
                self.data / "logs" / f"{name}.log",
            )
            self.services[name].start()
        for service in self.services.values():
            await service.wait_ready()
        say(
            f"up: nats {self.nats_port}, mongo {self.mongo_port}, fake {self.fake.url}, "
            + ", ".join(f"{s.name} {s.port}" for s in self.services.values())
            + f"; logs in {self.data / 'logs'}"
        )

    def close(self) -> dict[str, Any] | None:
        """Stop everything; the fake's dump of its jobs (None if it did not write one)."""
        for service in self.services.values():
            service.stop()
        dump = None
        if self.fake is not None:
            self.fake.stop()
            path = self.data / "fake-jobs.json"
            if path.exists():
                dump = json.loads(path.read_text())
        for server in (self.mongo, self.nats):
            if server is not None:
                server.stop()
        for workdir in self._workdirs:  # the servers' own temporary dirs, one per start: keep their logs
            for log in workdir.glob("*.log"):
                with (self.data / "logs" / f"{workdir.name.split('-')[1]}-{log.name}").open("ab") as out:
                    out.write(log.read_bytes())
            shutil.rmtree(workdir, ignore_errors=True)
        return dump

    # -- NATS, MongoDB, the fake ----------------------------------------------------------------------
    def start_nats(self) -> None:
        """nats-server on the run's port and store (same users): what it had survives a restart."""
        self.nats = local_servers.start_nats(
            port=self.nats_port, store_dir=self.data / "nats", credentials=self.credentials
        )
        self.nats.cleanup = False  # keep its log until close()
        self._workdirs.append(self.nats.workdir)

    def stop_nats(self, sig: int) -> None:
        assert self.nats is not None
        self.nats.stop(sig)

    def start_mongo(self) -> None:
        self.mongo = local_servers.start_mongo(port=self.mongo_port, db_path=self.data / "mongo.db")
        self.mongo.cleanup = False
        self._workdirs.append(self.mongo.workdir)

    def stop_mongo(self, sig: int = signal.SIGTERM) -> None:
        assert self.mongo is not None
        self.mongo.stop(sig)

    def _start_fake(self) -> None:
        knobs = [
            arg
            for name, value in self.fake_knobs.items()
            for arg in ("--knob", f"{name}={json.dumps(value)}")
        ]
        port = local_servers.free_port()
        cmd = [
            sys.executable,
            "-m",
            "chaos.fake",
            "--port",
            str(port),
            "--dump",
            str(self.data / "fake-jobs.json"),
            *knobs,
        ]
        self.fake = Process(
            "fake", cmd, {**os.environ, "PYTHONPATH": str(REPO)}, port, self.data / "logs" / "fake.log"
        )
        self.fake.start()
        deadline = time.monotonic() + 30
        while "listening" not in self.fake.log.read_text(errors="replace"):
            if self.fake.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sim fake did not start (log: {self.fake.log})")
            time.sleep(0.05)

    def fake_down(self) -> None:
        self.fake.send(signal.SIGUSR1)

    def fake_up(self) -> None:
        self.fake.send(signal.SIGUSR2)

    # -- the services' settings -----------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        key_file = self.data / "credentials.key"
        cipher_from_env(key_file)  # created once, before the services race to create it
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(
            {
                "NATS_URL": f"nats://127.0.0.1:{self.nats_port}",  # no credentials: each reads its own password
                "PIXSIM_NATS_CREDENTIALS_DIR": str(self.credentials.directory),
                "MONGO_URL": self.mongo_url,
                "PIXSIM_MONGO_DB": DB_NAME,
                "PIXSIM_PROVIDERS_DIR": str(REPO / "providers"),
                "PIXSIM_LOAD_PROVIDERS": "sim",
                "PIXSIM_SIM_BASE_URL": self.fake.url,
                "PIXSIM_CREDENTIALS_KEY_FILE": str(key_file),
                "PIXSIM_STORAGE_URL": f"file://{self.data / 'storage'}",
                "PIXSIM_BOOTSTRAP_ADMIN_KEY": self.admin_key,
                **self.service_env,
            }
        )
        allow_in_env(self.fake.url, env)  # the gateway's archiver copies results from the fake
        return env
