"""MongoDB round trips, counted client-side with a pymongo `CommandListener`.

In the bench's own process (the in-process path) the listener is registered before the services' clients
exist. In a service run as its own process, `service_main.py` registers it and writes the counts to a
file whenever it gets SIGUSR1 (and every second), which `ProcessMongoStats` reads. It costs about
0.04 ms of CPU per command.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from pymongo import monitoring


class MongoStats(monitoring.CommandListener):
    """Counts every command sent to MongoDB, by command and collection, with its client-side latency."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.micros: Counter[str] = Counter()
        self._started: dict[int, str] = {}
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self._started[event.request_id] = (
            f"{event.command_name} {target}" if isinstance(target, str) else event.command_name
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._done(event.request_id, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._done(event.request_id, event.duration_micros)

    def _done(self, request_id: int, micros: int) -> None:
        key = self._started.pop(request_id, "?")
        with self._lock:
            self.count[key] += 1
            self.micros[key] += micros

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        with self._lock:
            return Counter(self.count), Counter(self.micros)


def summary(before: tuple[Counter, Counter], after: tuple[Counter, Counter], items: int, wall: float) -> dict:
    """Commands per item between two snapshots, by command and collection."""
    count, micros = Counter(after[0]), Counter(after[1])
    count.subtract(before[0])
    micros.subtract(before[1])
    ops = sum(v for v in count.values() if v > 0)
    return {
        "ops_per_generation": round(ops / max(items, 1), 1),
        "ops_per_s": round(ops / wall, 1) if wall else None,
        "mean_op_ms": round(sum(v for v in micros.values() if v > 0) / max(ops, 1) / 1000, 2),
        "by_command": {
            k: {
                "count": c,
                "per_generation": round(c / max(items, 1), 2),
                "mean_ms": round(micros[k] / c / 1000, 2),
            }
            for k, c in count.most_common()
            if c > 0
        },
    }


# -- a service in its own process -----------------------------------------------------------------------
def dump_on_signal(stats: MongoStats, path: Path) -> None:
    """Write `stats` to `path` on SIGUSR1 and every second (a daemon thread; atomic rename)."""
    wake = threading.Event()

    def dump() -> None:
        while True:
            wake.wait(1.0)
            wake.clear()
            count, micros = stats.snapshot()
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"t": time.monotonic(), "count": count, "micros": micros}))
            os.replace(tmp, path)

    signal.signal(signal.SIGUSR1, lambda *_: wake.set())
    threading.Thread(target=dump, name="bench-mongo-stats", daemon=True).start()


class ProcessMongoStats:
    """The summed counts of several service processes, each dumping to its own file."""

    def __init__(self, files: dict[int, Path]) -> None:
        self.files = files  # pid -> stats file

    def snapshot(self, timeout: float = 3.0) -> tuple[Counter[str], Counter[str]]:
        asked = time.monotonic()
        for pid in self.files:
            try:
                os.kill(pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass
        count: Counter[str] = Counter()
        micros: Counter[str] = Counter()
        for path in self.files.values():
            data = self._fresh(path, asked, timeout)
            count.update(data.get("count", {}))
            micros.update(data.get("micros", {}))
        return count, micros

    @staticmethod
    def _fresh(path: Path, since: float, timeout: float) -> dict:
        deadline = since + timeout
        data: dict = {}
        while time.monotonic() < deadline:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                data = {}
            if data.get("t", 0) >= since:
                break
            time.sleep(0.02)
        return data
