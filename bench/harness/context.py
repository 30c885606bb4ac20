"""What one bench run hands each scenario: the flags, the console, what earlier scenarios measured, and
the shared system of real processes (one replica of each service, production settings), started once
and reused by the scenarios that need nothing else."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from .system import System

console = Console(width=None if sys.stdout.isatty() else 150)  # piped: do not wrap at 80 columns


@dataclass
class Context:
    args: argparse.Namespace
    results: dict[str, Any] = field(default_factory=dict)
    _system: System | None = None

    @property
    def console(self) -> Console:
        return console

    async def shared_system(self) -> System:
        if self._system is None:
            with console.status(
                "starting the system as processes (nats-server, nx-27017, sim fake, 4 services)"
            ):
                system = System(fake_backlog=self.args.fake_backlog, mongo_stats=not self.args.no_mongo_stats)
                await system.__aenter__()
            self._system = system
        return self._system

    def close(self) -> None:
        if self._system is not None:
            self._system.stop()
            self._system = None
