"""The sim provider's fake as a process of its own, for the chaos run.

    python -m chaos.fake --port 8100 --dump jobs.json --knob latency=1 --knob latency_max=8 ...

SIGUSR1 takes the fake down: it stops listening and drops its open connections, as a provider outage
looks to a client. SIGUSR2 brings it back on the same port, with the same jobs: a real provider does not
forget its jobs in an outage, and killing this process would. SIGTERM stops it after writing `--dump`:
every job's id, reference (the Idempotency-Key it was submitted with) and token, and the faults served.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import sys
from pathlib import Path
from typing import Any

from pixsim_provider_sdk.testing.fake_http import load_fake, parse_knobs

SIM = Path(__file__).resolve().parents[1] / "providers" / "sim"


def dump(fake: Any) -> dict[str, Any]:
    """What the chaos checks read: the jobs (one per submit that created one) and the faults served."""
    with fake._lock:  # handlers run under this lock: a consistent snapshot
        jobs = [{"id": j.id, "reference": j.reference, "token": j.token} for j in fake.jobs.values()]
        return {"jobs": jobs, "faults": dict(fake.faults), "submits": fake.submit_count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.fake", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dump", type=Path, required=True, help="where to write the jobs on SIGTERM")
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    fake = load_fake(SIM)(**parse_knobs(args.knob))
    signals: queue.SimpleQueue[int] = queue.SimpleQueue()  # put() is safe in a signal handler
    for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _frame: signals.put(s))
    fake.start(args.host, args.port)
    print(f"fake sim listening on {fake.url}", flush=True)
    up = True
    while True:
        try:
            sig = signals.get(timeout=0.5)
        except queue.Empty:
            continue
        if sig == signal.SIGUSR1 and up:
            fake.stop()
            up = False
            print("fake sim down", flush=True)
        elif sig == signal.SIGUSR2 and not up:
            fake.start(args.host, args.port)
            up = True
            print("fake sim up again", flush=True)
        elif sig in (signal.SIGTERM, signal.SIGINT):
            fake.stop()
            args.dump.write_text(json.dumps(dump(fake)))
            return 0


if __name__ == "__main__":
    sys.exit(main())
