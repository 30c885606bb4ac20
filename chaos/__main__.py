"""`python -m chaos`: see the README's "Chaos" section."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .run import Options, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description="PixSim under load while its parts are "
        "killed and restarted; prints the figures, exits 0 only if all are 0.",
    )
    parser.add_argument(
        "--generations", type=int, default=Options.generations, help="how many (default 1000)"
    )
    parser.add_argument("--rate", type=float, default=Options.rate, help="generations started per second")
    parser.add_argument(
        "--faults",
        choices=["full", "light"],
        default=Options.faults,
        help="full: every replica killed, NATS SIGTERM and SIGKILL, MongoDB restart, provider "
        "outage; light: fewer and shorter (the short test)",
    )
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=Options.drain_timeout,
        help="seconds to wait for every generation to end after the load",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the servers keep their data and the logs go "
        "(default: a temporary directory, removed after a clean run)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory after a clean run")
    parser.add_argument("--summary", type=Path, help="also write the figures and findings to this JSON file")
    args = parser.parse_args(argv)
    opts = Options(
        generations=args.generations,
        rate=args.rate,
        faults=args.faults,
        seed=args.seed,
        drain_timeout=args.drain_timeout,
        data_dir=args.data_dir,
        keep=args.keep,
        summary=args.summary,
    )
    return asyncio.run(run(opts))


if __name__ == "__main__":
    sys.exit(main())
