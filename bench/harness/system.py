"""The whole system as real processes, the way `make run` starts it (`pixsim_runtime.dev`), on free ports
and with its data in a temporary directory.

nats-server (authorization on; streams declared as the `setup` user first), nx-27017 (file store), the sim
fake, and each service as `python -m pixsim_<name>` (through `service_main.py`, which only adds a MongoDB
command counter). Replicas of the dispatcher and the poller share their durable consumers, as in
production. Service settings are the production defaults unless `env` overrides them; the services log
at WARNING to one file each, which `log_counts()` summarises.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import nats
from pixsim_gateway.api_keys import new_token
from pixsim_provider_sdk.safe_fetch import allow_in_env
from pixsim_runtime.local_servers import free_port
from pixsim_runtime.streams import declare_streams

from .load import DB_NAME
from .measure import proc_memory_mb
from .mongo_stats import ProcessMongoStats
from .servers import BENCH, PROVIDERS, Servers, start_servers

SERVICES = ("gateway", "dispatcher", "poller", "billing")
#: OpenTelemetry variables the bench removes: production without an exporter (spans made, none sent).
OTEL_VARS = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass
class Service:
    name: str  # "poller", "poller-2", ...
    proc: subprocess.Popen
    port: int
    log: Path
    stats: Path


class System:
    """Start with `async with System(...) as system:`; everything is stopped and deleted on the way out."""

    def __init__(
        self,
        *,
        replicas: dict[str, int] | None = None,
        env: dict[str, str] | None = None,
        fake_latency: float = 0.0,
        fake_backlog: int = 128,
        mongo_stats: bool = True,
    ) -> None:
        self.replicas = {name: 1 for name in SERVICES} | (replicas or {})
        self.overrides = env or {}
        self.fake_latency = fake_latency
        self.fake_backlog = fake_backlog
        self.count_mongo = mongo_stats
        self.admin_key = new_token().token
        self.data = Path(tempfile.mkdtemp(prefix="pixsim-bench-"))
        self.servers: Servers | None = None
        self.services: list[Service] = []
        self.retired: list[Service] = []  # stopped by `remove` (their logs still count)
        self._service_env: dict[str, str] = {}

    # -- lifecycle ------------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    async def start(self) -> None:
        self.servers = start_servers(
            fake_latency=self.fake_latency, fake_backlog=self.fake_backlog, data_dir=self.data
        )
        nc = await nats.connect(
            self.servers.nats.url, **self.servers.nats.credentials.connect_options("setup")
        )
        try:
            await declare_streams(nc.jetstream())
        finally:
            await nc.close()
        self._service_env = self._env()
        (self.data / "logs").mkdir()
        for name in SERVICES:
            for _ in range(self.replicas[name]):
                self._spawn(name)
        await asyncio.gather(*(asyncio.to_thread(self._wait_ready, s) for s in self.services))

    def _spawn(self, name: str) -> Service:
        same = [s for s in [*self.services, *self.retired] if s.name.split("-")[0] == name]
        label = name if not same else f"{name}-{len(same) + 1}"
        port = free_port()
        log, stats = self.data / "logs" / f"{label}.log", self.data / f"{label}.mongo.json"
        cmd = [sys.executable, str(BENCH / "harness" / "service_main.py"), name]
        if self.count_mongo:
            cmd.append(str(stats))
        with log.open("w") as out:
            proc = subprocess.Popen(
                cmd,
                env={**self._service_env, "PIXSIM_HTTP_PORT": str(port)},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        service = Service(label, proc, port, log, stats)
        self.services.append(service)
        return service

    async def add_replica(self, name: str) -> Service:
        """One more process of service `name`, sharing its durable consumers; returns once it is ready."""
        service = self._spawn(name)
        await asyncio.to_thread(self._wait_ready, service)
        return service

    def remove(self, service: Service) -> None:
        """Stop one service process (SIGTERM: it finishes what it holds, as in a rolling update)."""
        self._terminate([service])
        self.services.remove(service)
        self.retired.append(service)

    def _env(self) -> dict[str, str]:
        servers = self.servers
        env = {k: v for k, v in os.environ.items() if k not in OTEL_VARS and not k.startswith("PIXSIM_")}
        env.update(
            {
                "NATS_URL": servers.nats.url,
                "PIXSIM_NATS_CREDENTIALS_DIR": str(servers.nats.credentials.directory),
                "MONGO_URL": servers.mongo.url,
                "PIXSIM_MONGO_DB": DB_NAME,
                "PIXSIM_PROVIDERS_DIR": str(PROVIDERS),
                "PIXSIM_CREDENTIALS_KEY": os.environ["PIXSIM_CREDENTIALS_KEY"],
                "PIXSIM_STORAGE_URL": f"file://{self.data / 'storage'}",
                "PIXSIM_SIM_BASE_URL": servers.fake.url,
                "PIXSIM_BOOTSTRAP_ADMIN_KEY": self.admin_key,
                "PIXSIM_LOG_LEVEL": "WARNING",
            }
        )
        allow_in_env(servers.fake.url, env)  # as `make run`: the archiver may fetch results from the fake
        env.update(self.overrides)
        return env

    @staticmethod
    def _wait_ready(service: Service, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if service.proc.poll() is not None:
                raise RuntimeError(
                    f"{service.name} exited with code {service.proc.returncode} during start-up:\n"
                    f"{service.log.read_text(errors='replace')[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{service.port}/readyz", timeout=1) as resp:
                    if resp.status < 300:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{service.name} not ready after {timeout}s")

    @staticmethod
    def _terminate(services: list[Service]) -> None:
        for service in services:
            if service.proc.poll() is None:
                service.proc.send_signal(signal.SIGTERM)
        for service in services:
            try:
                service.proc.wait(15)
            except subprocess.TimeoutExpired:
                service.proc.kill()
                service.proc.wait()

    def stop(self) -> None:
        self._terminate(self.services)
        self.services = []
        if self.servers is not None:
            self.servers.stop()
            self.servers = None
        shutil.rmtree(self.data, ignore_errors=True)

    # -- what the scenarios read ----------------------------------------------------------------------
    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.service('gateway').port}"

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    @property
    def pids(self) -> dict[str, int]:
        """Every process of the system by name (services, then servers), and this bench process."""
        return {
            **{s.name: s.proc.pid for s in self.services},
            **self.servers.pids,
            "bench_client": os.getpid(),
        }

    def mongo_stats(self) -> ProcessMongoStats:
        return ProcessMongoStats({s.proc.pid: s.stats for s in self.services})

    def memory_mb(self) -> dict[str, dict[str, float]]:
        return {s.name: proc_memory_mb(s.proc.pid) for s in self.services}

    def log_counts(self) -> Counter[str]:
        """Warnings and errors the services logged so far, by service, level and message start (ids masked)."""
        counts: Counter[str] = Counter()
        for service in [*self.services, *self.retired]:
            for line in service.log.read_text(errors="replace").splitlines():
                match = LOG_LINE.match(line)
                if match:
                    message = ID.sub("<id>", match["message"])[:70]
                    counts[f"{service.name} {match['level']} {match['logger']}: {message}"] += 1
        return counts


LOG_LINE = re.compile(r"^\S+ \S+ (?P<level>WARNING|ERROR|CRITICAL) (?P<logger>\S+): (?P<message>.*)$")
ID = re.compile(r"\b(?:[0-9a-f]{20,}|job_[0-9a-f]+)\b")
