"""The four services in the bench's own process, each built by its own composition root (as
tests/conftest.py does) and served by `pixsim_runtime.inprocess.serve`: one Python process, one event loop.
Also the in-process instruments: service warnings, FastStream's pull-loop restarts, span durations.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor
from pixsim_provider_sdk import discover

from .load import DB_NAME
from .measure import pct
from .servers import PROVIDERS


def service_settings(
    nats_url: str, mongo_url: str, poll_min: float, poll_max: float, credentials_dir: str, storage_dir: str
) -> dict:
    """Production defaults, except the poll interval (the sim at latency 0 finishes at once). NATS
    authorization is on: each service connects as its own user, with its password from `credentials_dir`."""
    return {
        "NATS_URL": nats_url,
        "PIXSIM_NATS_CREDENTIALS_DIR": credentials_dir,
        "MONGO_URL": mongo_url,
        "PIXSIM_MONGO_DB": DB_NAME,
        "PIXSIM_PROVIDERS_DIR": str(PROVIDERS),
        "PIXSIM_POLL_MIN_INTERVAL": poll_min,
        "PIXSIM_POLL_MAX_INTERVAL": poll_max,
        "PIXSIM_STORAGE_URL": f"file://{storage_dir}",
    }


def build_apps(settings: dict, tracer_provider: Any) -> list:
    """The four service apps, each built by its own composition root (as tests/conftest.py does)."""
    from pixsim_billing.app import BillingSettings
    from pixsim_billing.app import create_app as billing
    from pixsim_dispatcher.app import DispatcherSettings
    from pixsim_dispatcher.app import create_app as dispatcher
    from pixsim_gateway.app import GatewaySettings
    from pixsim_gateway.app import create_app as gateway
    from pixsim_poller.app import PollerSettings
    from pixsim_poller.app import create_app as poller

    apps = []
    for create, settings_cls in (
        (gateway, GatewaySettings),
        (dispatcher, DispatcherSettings),
        (poller, PollerSettings),
        (billing, BillingSettings),
    ):
        registry = discover(PROVIDERS, include_entry_points=False)
        apps.append(create(settings_cls(**settings), tracer_provider=tracer_provider, registry=registry))
    return apps


class WarningCounter(logging.Handler):
    """Counts the services' warnings and errors (retries, failed polls), per logger and message start."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.levelname} {record.name}: {record.getMessage()[:60]}"] += 1


class FastStreamLogFilter(logging.Filter):
    """Counts, and keeps off the console, FastStream's messages about its consume tasks ending.

    nats-py 2.16's `fetch` can raise a plain `asyncio.TimeoutError`, which FastStream 0.7's pull loop
    does not suppress (it suppresses `nats.errors.TimeoutError`, a subclass): the loop task dies, its
    supervisor logs ERROR with a traceback (once) and restarts it, logging INFO each time."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "raised an exception, retrying" in message:
            self.counts["pull loop crashed and restarted (ERROR, traceback shown once per process)"] += 1
            return False
        if "is being executed" in message:
            self.counts["consume task ended (INFO)"] += 1
            return False
        return True


class ServiceLogs:
    """The in-process services' warnings (kept off the console) and FastStream's task restarts, counted."""

    def __init__(self) -> None:
        self.warnings = WarningCounter()
        self.faststream = FastStreamLogFilter()

    def install(self) -> None:
        root = logging.getLogger()
        root.addHandler(self.warnings)
        for handler in root.handlers:
            if handler is not self.warnings:
                handler.addFilter(
                    lambda record: record.levelno >= logging.ERROR or not record.name.startswith("pixsim")
                )
        logging.getLogger("faststream.access.nats").addFilter(
            self.faststream
        )  # FastStream's own, non-propagating

    def counts(self) -> Counter[str]:
        return self.warnings.counts + Counter(
            {f"faststream: {k}": v for k, v in self.faststream.counts.items()}
        )


class SpanStats(SpanProcessor):
    """A span processor that only aggregates durations by span name (no export)."""

    name = "spans"
    _GID = re.compile(r"^pixsim\.generations\.[^. ]+\.")

    def __init__(self) -> None:
        self.durations: dict[str, list[float]] = defaultdict(list)

    def on_end(self, span: Any) -> None:
        if span.end_time and span.start_time:
            name = self._GID.sub("pixsim.generations.*.", span.name)  # FastStream names spans by subject
            self.durations[name].append((span.end_time - span.start_time) / 1e9)

    # the Probe protocol (harness.phase)
    def begin(self) -> dict[str, int]:
        return {name: len(v) for name, v in self.durations.items()}

    def end(self, before: dict[str, int], generations: int, wall: float) -> dict[str, dict]:
        out = {}
        for name, values in self.durations.items():
            new = values[before.get(name, 0) :]
            if new:
                out[name] = {
                    "per_generation": round(len(new) / max(generations, 1), 2),
                    "p50_ms": round(pct(new, 50) * 1000, 2),
                    "p95_ms": round(pct(new, 95) * 1000, 2),
                    "total_s": round(sum(new), 3),
                }
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["total_s"]))
