"""`make run`: the whole system on one machine, each part its own process.

Starts nats-server (4222) and nx-27017 (27017) unless NATS_URL / MONGO_URL point at running servers,
the fake remote API of every provider folder that ships one (ports from base + 100 up, in folder order),
and the four services (gateway on 127.0.0.1:<base>, health ports base + 1..3 for the others; base 8000).
Every port moves with a flag or variable (`--base-port` / `PIXSIM_DEV_BASE_PORT`, `--nats-port` /
`PIXSIM_DEV_NATS_PORT`, `--mongo-port` / `PIXSIM_DEV_MONGO_PORT`). Start-up waits for each service as long
as its process is alive (up to `--start-timeout`), saying what it waits for. Ctrl-C stops everything.
Services are started by command, so this module never imports a service.

NATS runs with authorization on: every user of `bus_auth` has a random password in
`.pixsim/nats-credentials/<user>` (created once, kept), each service reads its own from there
(`PIXSIM_NATS_CREDENTIALS_DIR`), and the streams are declared (or updated) as the `setup` user first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pixsim_provider_sdk import discover
from pixsim_provider_sdk.safe_fetch import allow_in_env

from . import local_servers
from .bus_auth import BusCredentials
from .secrets import cipher_from_env
from .streams import declare_streams

#: Each service's port, as an offset from the base port (the gateway's).
SERVICES = {"gateway": 0, "dispatcher": 1, "poller": 2, "billing": 3}
FIRST_FAKE_OFFSET = 100


def _say(text: str) -> None:
    print(f"[pixsim] {text}", flush=True)


def _wait_http(url: str, timeout: float, proc: subprocess.Popen, name: str, say_every: float = 10.0) -> None:
    """Until `url` answers 2xx: fails at once if the process exits, else only after `timeout` (a slow,
    loaded machine is not a failure), saying every `say_every` seconds what it is still waiting for."""
    started = time.monotonic()
    next_say = started + say_every
    while (waited := time.monotonic() - started) < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status < 300:
                    return
        except OSError:
            pass
        if time.monotonic() >= next_say:
            _say(f"still waiting for {name} ({url}), {waited:.0f}s so far; its process is alive")
            next_say += say_every
        time.sleep(0.1)
    raise RuntimeError(
        f"{name} not ready at {url} after {timeout:.0f}s (raise --start-timeout on a slow machine)"
    )


def _start_fakes(providers_dir: Path, env: dict[str, str], procs: list, first_port: int) -> None:
    port = first_port
    # The adapter reads PIXSIM_<ID>_BASE_URL after its manifest's id, which need not be the folder's name.
    ids = {
        Path(item.origin).name: item.manifest.id
        for item in discover(providers_dir, include_entry_points=False)
    }
    for folder in sorted(providers_dir.iterdir()):
        if not (folder / "fake_api.py").exists() or folder.name.startswith(("_", ".")):
            continue
        var = f"PIXSIM_{ids.get(folder.name, folder.name).upper().replace('-', '_')}_BASE_URL"
        if var in env:  # pointed at a real API or another fake: leave it
            continue
        port = _free_from(port)
        knobs = [arg for knob in env.get("PIXSIM_FAKE_KNOBS", "").split() for arg in ("--knob", knob)]
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pixsim_provider_sdk.testing.fake_http",
                str(folder),
                "--port",
                str(port),
                *knobs,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        procs.append((f"fake {folder.name}", proc))
        env[var] = f"http://127.0.0.1:{port}"
        allow_in_env(env[var], env)  # the dispatcher may fetch sources from this fake (e.g. its results)
        _say(f"fake {folder.name} API on {env[var]}")
        port += 1


def _admin_key(path: Path) -> str:
    """The local admin API key: created (readable by this user only) on the first start, then reused."""
    if not path.exists():
        key_id, secret = (
            secrets.token_hex(8),
            secrets.token_urlsafe(32),
        )  # the format of pixsim_gateway.api_keys
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"psk_{key_id}_{secret}\n")
    return path.read_text().strip()


def _free_from(port: int) -> int:
    import socket

    while True:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                port += 1


async def _declare_streams(url: str, credentials: BusCredentials) -> None:
    """Create or update the streams (their limits may have changed since `.pixsim/` was made)."""
    import nats

    nc = await nats.connect(
        url, connect_timeout=5, max_reconnect_attempts=0, **credentials.connect_options("setup")
    )
    try:
        await declare_streams(nc.jetstream())
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run all of PixSim locally.")
    parser.add_argument("--data-dir", default=".pixsim", help="where NATS and MongoDB keep their data")
    parser.add_argument(
        "--base-port",
        type=int,
        default=int(os.environ.get("PIXSIM_DEV_BASE_PORT", "8000")),
        help="the gateway's port; the other services take the next three, the fakes base+100 up "
        "(env PIXSIM_DEV_BASE_PORT)",
    )
    parser.add_argument(
        "--nats-port",
        type=int,
        default=int(os.environ.get("PIXSIM_DEV_NATS_PORT", "4222")),
        help="nats-server's port (env PIXSIM_DEV_NATS_PORT)",
    )
    parser.add_argument(
        "--mongo-port",
        type=int,
        default=int(os.environ.get("PIXSIM_DEV_MONGO_PORT", "27017")),
        help="the MongoDB wire server's port (env PIXSIM_DEV_MONGO_PORT)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=float(os.environ.get("PIXSIM_DEV_START_TIMEOUT", "300")),
        help="seconds a live service may take to become ready (env PIXSIM_DEV_START_TIMEOUT)",
    )
    args = parser.parse_args(argv)
    data = Path(args.data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("PIXSIM_PROVIDERS_DIR", str(Path("providers").resolve()))
    env.setdefault("PIXSIM_CREDENTIALS_KEY_FILE", str(data / "credentials.key"))
    env.setdefault("PIXSIM_STORAGE_URL", f"file://{data / 'storage'}")  # uploads and archived results
    cipher_from_env(
        env["PIXSIM_CREDENTIALS_KEY_FILE"]
    )  # create the local key once, before any service races to
    admin_key_file = data / "admin.key"
    env.setdefault("PIXSIM_BOOTSTRAP_ADMIN_KEY", _admin_key(admin_key_file))
    servers: list[local_servers.LocalServer] = []
    procs: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        if "NATS_URL" not in env:
            credentials = BusCredentials.ensure(data / "nats-credentials")
            servers.append(
                local_servers.start_nats(
                    port=args.nats_port, store_dir=data / "nats", credentials=credentials
                )
            )
            env["NATS_URL"] = servers[-1].url
            env["PIXSIM_NATS_CREDENTIALS_DIR"] = str(credentials.directory)
            asyncio.run(_declare_streams(env["NATS_URL"], credentials))
            _say(
                f"nats-server (JetStream) on {env['NATS_URL']}, data in {data / 'nats'}; authorization on, "
                f"passwords in {credentials.directory}/<user> (upstream systems: user `upstream`)"
            )
        if "MONGO_URL" not in env:
            servers.append(local_servers.start_mongo(port=args.mongo_port, db_path=data / "mongo.db"))
            env["MONGO_URL"] = servers[-1].url
            _say(f"MongoDB wire server (nx-27017) on {env['MONGO_URL']}")
        _start_fakes(Path(env["PIXSIM_PROVIDERS_DIR"]), env, procs, args.base_port + FIRST_FAKE_OFFSET)
        ports = {name: args.base_port + offset for name, offset in SERVICES.items()}
        for name, port in ports.items():
            proc = subprocess.Popen(
                [sys.executable, "-m", f"pixsim_{name}"], env={**env, "PIXSIM_HTTP_PORT": str(port)}
            )
            procs.append((name, proc))
        for name, port in ports.items():
            proc = dict(procs)[name]
            _wait_http(f"http://127.0.0.1:{port}/readyz", args.start_timeout, proc, name)
            _say(f"{name} ready (health on http://127.0.0.1:{port}/readyz)")
        api = f"http://127.0.0.1:{ports['gateway']}"
        _say(f"PixSim is up: API on {api}/api/v1 (docs at {api}/docs)")
        _say(
            f"admin API key in {admin_key_file} (the pixsim CLI reads it from there); with curl: "
            f'-H "Authorization: Bearer $(cat {admin_key_file})"'
        )
        cli_env = "" if ports["gateway"] == 8000 else f"PIXSIM_API_URL={api} "
        _say(
            f'try: {cli_env}uv run pixsim generate --provider sim --prompt "a fox in the snow"   '
            "(Ctrl-C stops everything)"
        )
        while not stopping:
            for name, proc in procs:
                if proc.poll() is not None:
                    _say(f"{name} exited with code {proc.returncode}; stopping")
                    stopping = True
                    break
            time.sleep(0.2)
        return 0
    except RuntimeError as exc:
        _say(f"start-up failed: {exc}")
        return 1
    finally:
        _say("stopping")
        for _, proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for server in reversed(servers):
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
