"""`make run` on a machine whose usual ports are taken: every port moves with the base port (and the NATS
and MongoDB ports), the whole system comes up there, the bootstrapped key works, and Ctrl-C stops it all."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import REPO
from pixsim_runtime.local_servers import free_port

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]


def _free_block(size: int) -> int:
    """The first of `size` consecutive free loopback ports."""
    for _ in range(200):
        base = random.randrange(20_000, 40_000)
        try:
            socks = [socket.create_server(("127.0.0.1", base + i)) for i in range(size)]
        except OSError:
            continue
        for s in socks:
            s.close()
        return base
    raise RuntimeError("no block of free ports")


def test_make_run_moves_to_other_ports_and_stops_cleanly(tmp_path: Path):
    base, nats_port, mongo_port = _free_block(4), free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NATS_URL", "MONGO_URL", "PIXSIM_PROVIDERS_DIR") and not k.endswith("_BASE_URL")
    }
    env["PIXSIM_DEV_BASE_PORT"] = str(base)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pixsim_runtime.dev",
            "--data-dir",
            str(tmp_path / "data"),
            "--nats-port",
            str(nats_port),
            "--mongo-port",
            str(mongo_port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while not any("try: " in line for line in lines):  # the last line of a finished start-up
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines[-30:])
            lines.append(proc.stdout.readline())
        api = f"http://127.0.0.1:{base}"
        assert f"API on {api}/api/v1" in "".join(lines)
        assert f"nats://127.0.0.1:{nats_port}" in "".join(lines) and f":{mongo_port}" in "".join(lines)
        assert f"PIXSIM_API_URL={api} uv run pixsim generate" in lines[-1]  # the CLI hint names the moved API
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        assert httpx.get(f"{api}/readyz").status_code == 200
        assert (
            httpx.get(f"{api}/api/v1/providers", headers={"Authorization": f"Bearer {key}"}).status_code
            == 200
        )
        assert httpx.get(f"{api}/api/v1/providers").status_code == 401
        for offset in (1, 2, 3):  # dispatcher, poller, billing health ports follow the base
            assert httpx.get(f"http://127.0.0.1:{base + offset}/readyz").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, "".join(lines[-30:])


def test_a_fake_is_announced_under_its_manifest_id_not_its_folder_name(tmp_path: Path, monkeypatch):
    from pixsim_runtime import dev

    providers = tmp_path / "providers"
    shutil.copytree(REPO / "providers" / "sim", providers / "my_folder")
    manifest = providers / "my_folder" / "manifest.py"
    manifest.write_text(manifest.read_text().replace('id="sim"', 'id="other-sim"'))
    monkeypatch.setattr(dev.subprocess, "Popen", lambda *args, **kwargs: None)  # start nothing
    env: dict[str, str] = {}
    dev._start_fakes(providers, env, [], first_port=free_port())
    assert "PIXSIM_OTHER_SIM_BASE_URL" in env and "PIXSIM_MY_FOLDER_BASE_URL" not in env
