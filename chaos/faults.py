"""The faults of a run, spread over the time the load is sent: every service replica SIGKILLed in turn and
started again; NATS stopped with SIGTERM and with SIGKILL and started again on the same store; the MongoDB
wire server restarted on the same file; the provider fake down for a while and back with its jobs.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .cluster import Cluster, say

Action = Callable[[Cluster], Awaitable[str]]


@dataclass(frozen=True)
class Fault:
    name: str
    action: Action


def kill(service: str) -> Fault:
    async def act(cluster: Cluster) -> str:
        proc = cluster.services[service]
        proc.stop(signal.SIGKILL)
        await asyncio.sleep(1)
        proc.start()
        return f"ready again after {await proc.wait_ready():.1f}s"

    return Fault(f"SIGKILL {service}", act)


def nats_stop(sig: int, down_s: float) -> Fault:
    async def act(cluster: Cluster) -> str:
        cluster.stop_nats(sig)
        await asyncio.sleep(down_s)
        cluster.start_nats()
        return await _all_ready(cluster)

    return Fault(f"NATS {signal.Signals(sig).name}, down {down_s:.0f}s", act)


def mongo_restart(down_s: float) -> Fault:
    async def act(cluster: Cluster) -> str:
        cluster.stop_mongo(signal.SIGTERM)
        await asyncio.sleep(down_s)
        cluster.start_mongo()
        return await _all_ready(cluster)

    return Fault(f"MongoDB restart, down {down_s:.0f}s", act)


def fake_outage(down_s: float) -> Fault:
    async def act(cluster: Cluster) -> str:
        cluster.fake_down()
        await asyncio.sleep(down_s)
        cluster.fake_up()
        return "back"

    return Fault(f"provider fake down {down_s:.0f}s", act)


async def _all_ready(cluster: Cluster) -> str:
    started = time.monotonic()
    await asyncio.gather(*(s.wait_ready() for s in cluster.services.values()))
    return f"every service ready again after {time.monotonic() - started:.1f}s"


def schedule(profile: str) -> list[Fault]:
    """`full`: every replica killed, both NATS stops, a MongoDB restart and a provider outage, interleaved.
    `light` (the short test): fewer and shorter."""
    if profile == "light":
        return [
            kill("gateway"),
            nats_stop(signal.SIGKILL, 3),
            kill("dispatcher-1"),
            fake_outage(5),
            kill("poller-2"),
            mongo_restart(3),
            kill("billing"),
        ]
    return [
        kill("dispatcher-1"),
        kill("poller-1"),
        nats_stop(signal.SIGTERM, 5),
        kill("billing"),
        fake_outage(20),
        kill("gateway"),
        mongo_restart(5),
        kill("dispatcher-2"),
        nats_stop(signal.SIGKILL, 8),
        kill("poller-2"),
    ]


async def run_faults(cluster: Cluster, faults: list[Fault], over_s: float, log: list[str]) -> None:
    """One fault after another, evenly spread over `over_s` seconds (each waits for the previous to end)."""
    started = time.monotonic()
    gap = over_s / (len(faults) + 1)
    for i, fault in enumerate(faults, 1):
        await asyncio.sleep(max(0.0, started + i * gap - time.monotonic()))
        at = time.monotonic() - started
        say(f"t={at:5.0f}s  {fault.name} ...")
        try:
            outcome = await fault.action(cluster)
        except Exception as exc:  # noqa: BLE001 - say so and go on: the checks still run
            outcome = f"FAILED: {type(exc).__name__}: {exc}"
        line = f"t={at:5.0f}s  {fault.name}: {outcome}"
        say(line)
        log.append(line)
