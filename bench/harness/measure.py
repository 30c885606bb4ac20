"""Measuring instruments shared by every scenario: percentiles, CPU and memory of processes, formatting.

Times that cross process boundaries (the fake's job clock, events seen on NATS) all use `time.monotonic()`,
which is the same clock (CLOCK_MONOTONIC) in every process of the machine.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float | None:
    """The p-th percentile (linear interpolation), or None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} s"


def rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    return None if a is None or not b else round(a / b, digits)


def ceil_div(a: float, b: float) -> int:
    return max(1, math.ceil(a / b))


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (the peak so far) of a process, in MB; empty if it is gone."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(value.split()[0]) / 1024, 1)  # kB
    except OSError:
        pass
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts) - idle, sum(parts)


class CpuMeter:
    """CPU seconds per process over a phase: shows who saturates the (2) cores, and what the rest of the
    machine (other users' test runs) took meanwhile."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self.start = self.now()

    def now(self) -> dict[str, Any]:
        return {
            "t": time.monotonic(),
            "machine": machine_cpu(),
            **{name: proc_cpu_s(pid) for name, pid in self.pids.items()},
        }

    def result(self) -> dict[str, float]:
        """`<name>_cores` (mean cores used), `<name>_cpu_s`, the machine's busy share and the other processes'."""
        end = self.now()
        wall = end["t"] - self.start["t"]
        out: dict[str, float] = {"wall_s": round(wall, 3)}
        for name in self.pids:
            used = end[name] - self.start[name]
            out[f"{name}_cpu_s"] = round(used, 3)
            out[f"{name}_cores"] = round(used / wall, 3)
        busy = end["machine"][0] - self.start["machine"][0]
        total = end["machine"][1] - self.start["machine"][1]
        out["machine_busy_pct"] = round(100 * busy / total, 1) if total else 0.0
        ours = sum(out[f"{name}_cores"] for name in self.pids)
        out["other_processes_cores"] = round(
            max(0.0, out["machine_busy_pct"] / 100 * (os.cpu_count() or 1) - ours), 2
        )
        return out


def cpu_ms_per_item(cpu: dict[str, float], names: list[str], items: int) -> dict[str, float]:
    """CPU milliseconds per item for each process in `names` (from a `CpuMeter.result()`)."""
    return {name: round(cpu.get(f"{name}_cpu_s", 0.0) * 1000 / max(items, 1), 2) for name in names}
