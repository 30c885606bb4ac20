"""A short `make chaos`: 200 generations over HTTP and NATS through real processes (two dispatchers, two
pollers) while a dispatcher, a poller, billing and the gateway are SIGKILLed, NATS is SIGKILLed, MongoDB
restarted and the provider goes down; nothing may be lost, stuck, submitted or charged twice, leaked or
dead-lettered. It runs `python -m chaos` as a process of its own, on free ports and a temporary directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(480)]


def test_a_short_chaos_run_loses_nothing_and_counts_nothing_twice(tmp_path):
    summary_file = tmp_path / "summary.json"
    cmd = [
        sys.executable,
        "-m",
        "chaos",
        "--generations",
        "200",
        "--rate",
        "2.5",
        "--faults",
        "light",
        "--drain-timeout",
        "240",
        "--summary",
        str(summary_file),
    ]
    run = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=450)
    output = run.stdout + run.stderr
    print(output)
    assert summary_file.exists(), output[-5000:]
    summary = json.loads(summary_file.read_text())
    figures = " ".join(f"{name}={n}" for name, n in summary["figures"].items())
    assert run.returncode == 0, f"{figures}\n{output[-5000:]}"
