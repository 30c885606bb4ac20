"""Every provider folder's fake runs from the command line (`make run`, the system tests and chaos start
it so): it prints `fake <id> listening on <url>` once, applies its knobs, answers over HTTP and stops
cleanly on SIGTERM. The folders come from discovery, so a new one is covered with no edit here."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pixsim_provider_sdk.testing.cases import load_folder_provider

from .test_conformance import EXAMPLE, REPO, provider_folders


@pytest.mark.parametrize("folder", [*provider_folders(), EXAMPLE], ids=lambda folder: folder.name)
def test_fake_cli_serves_until_sigterm(folder: Path):
    command = [
        sys.executable,
        "-m",
        "pixsim_provider_sdk.testing.fake_http",
        str(folder),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--knob",
        "latency=0",
        "--knob",
        "quota=1",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    ) as proc:
        try:
            line = proc.stdout.readline()
            match = re.fullmatch(r"fake (\S+) listening on (http://127\.0\.0\.1:\d+)\n", line)
            assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
            assert match[1] == load_folder_provider(folder).provider_id
            resp = httpx.get(f"{match[2]}/no/such/route")
            assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0


def test_fake_cli_refuses_a_knob_the_fake_does_not_have():
    command = [
        sys.executable,
        "-m",
        "pixsim_provider_sdk.testing.fake_http",
        str(REPO / "providers" / "sim"),
        "--port",
        "0",
        "--knob",
        "no_such_knob=1",
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=30, cwd=REPO)
    assert done.returncode == 2 and "no_such_knob" in done.stderr
