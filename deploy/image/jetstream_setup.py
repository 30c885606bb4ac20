"""Create or update PixSim's JetStream streams and durable consumers, once, before the services start.

    python deploy/image/jetstream_setup.py           # the Kubernetes Job: declare, then exit 0
    python deploy/image/jetstream_setup.py --wait --service gateway   # an init container: wait until the
                                                     # Job has declared the streams and that service's consumers
    python deploy/image/jetstream_setup.py --plan    # print what would be declared (no connection)

NATS credentials come from `NATS_USER` (default `setup`; an init container uses its service's user,
which may read only its own consumers) and `NATS_PASSWORD` or that user's file in
`PIXSIM_NATS_CREDENTIALS_DIR` (pixsim_runtime.bus_auth has the permissions).

The streams come from `pixsim_runtime.streams` (replicas from `PIXSIM_STREAM_REPLICAS`). The durable
consumers are read from the four service apps themselves (each app is built, not started: nothing
connects), so this job can never disagree with the subscribers the services bind to. Declaring is
idempotent: JetStream's consumer create updates an existing consumer to the same config.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass

SERVICES = ("gateway", "dispatcher", "poller", "billing")


@dataclass(frozen=True)
class Consumer:
    """One durable pull consumer, as the service's subscriber would create it."""

    service: str
    stream: str
    config: object  # nats.js.api.ConsumerConfig

    @property
    def name(self) -> str:
        return self.config.durable_name  # type: ignore[attr-defined]


def consumer_plan() -> list[Consumer]:
    """Every durable consumer the four services subscribe with, read from their built apps."""
    # Building an app reads the credentials key; this job never decrypts anything, so a throwaway
    # in-memory key is enough when the Secret is not mounted (docs generation, tests).
    if not os.environ.get("PIXSIM_CREDENTIALS_KEY"):
        from cryptography.fernet import Fernet

        os.environ["PIXSIM_CREDENTIALS_KEY"] = Fernet.generate_key().decode()
    from opentelemetry.sdk.trace import TracerProvider
    from pixsim_provider_sdk import Registry

    plan: list[Consumer] = []
    for service in SERVICES:
        app_module = importlib.import_module(f"pixsim_{service}.app")
        app = app_module.create_app(tracer_provider=TracerProvider(), registry=Registry())
        for sub in app.state.ctx.broker.subscribers:
            options = sub.extra_options or {}
            if not options.get("durable"):
                continue
            config = copy.copy(sub.config)
            # What nats-py's pull_subscribe sets when it creates the consumer itself.
            config.name = config.durable_name = options["durable"]
            if not config.filter_subjects:
                config.filter_subject = sub.subject.broker_address
            plan.append(Consumer(service, options["stream"], config))
    return plan


def stream_plan(replicas: int) -> list[object]:
    from pixsim_runtime.streams import stream_configs

    return stream_configs(replicas)


def connect_options(default_user: str = "setup") -> dict[str, str]:
    """`nats.connect` credentials as the services find theirs: NATS_USER, and NATS_PASSWORD or the user's
    file in PIXSIM_NATS_CREDENTIALS_DIR (none without a password)."""
    from pixsim_runtime.bus_auth import inbox_prefix, read_password

    user = os.environ.get("NATS_USER") or default_user
    password = os.environ.get("NATS_PASSWORD")
    if not password and os.environ.get("PIXSIM_NATS_CREDENTIALS_DIR"):
        password = read_password(os.environ["PIXSIM_NATS_CREDENTIALS_DIR"], user)
    if not password:
        return {}
    return {"user": user, "password": password, "inbox_prefix": inbox_prefix(user)}


async def declare(nats_url: str, replicas: int, consumers: list[Consumer], **auth: str) -> None:
    """Create or update every stream, then every durable consumer (as the `setup` user)."""
    import nats
    from pixsim_runtime.streams import declare_streams

    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=10, **auth)
    try:
        js = nc.jetstream()
        await declare_streams(js, replicas)
        for consumer in consumers:
            await js.add_consumer(consumer.stream, config=consumer.config)
            print(f"consumer {consumer.stream}/{consumer.name} ({consumer.service}) ready", flush=True)
    finally:
        await nc.close()


async def missing(nats_url: str, replicas: int, consumers: list[Consumer], **auth: str) -> list[str]:
    """The streams and consumers that do not exist yet."""
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=0, **auth)
    try:
        js, absent = nc.jetstream(), []
        for stream in stream_plan(replicas):
            try:
                await js.stream_info(stream.name)  # type: ignore[attr-defined]
            except NotFoundError:
                absent.append(f"stream {stream.name}")  # type: ignore[attr-defined]
        for consumer in consumers:
            try:
                await js.consumer_info(consumer.stream, consumer.name)
            except NotFoundError:
                absent.append(f"consumer {consumer.stream}/{consumer.name}")
        return absent
    finally:
        await nc.close()


async def wait(nats_url: str, replicas: int, consumers: list[Consumer], timeout: float, **auth: str) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            absent = await missing(nats_url, replicas, consumers, **auth)
        except Exception as exc:  # noqa: BLE001 - NATS not reachable yet: keep waiting
            absent = [f"NATS at {nats_url} ({type(exc).__name__})"]
        if not absent:
            return True
        if time.monotonic() > deadline:
            print(f"still missing after {timeout:.0f}s: {', '.join(absent)}", file=sys.stderr)
            return False
        print(f"waiting for: {', '.join(absent)}", flush=True)
        await asyncio.sleep(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--wait", action="store_true", help="only wait until everything exists")
    mode.add_argument(
        "--plan", action="store_true", help="print the streams and consumers; connect to nothing"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="--wait gives up after this (s)")
    parser.add_argument("--service", choices=SERVICES, help="--wait for this service's consumers only")
    args = parser.parse_args(argv)
    nats_url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    replicas = int(os.environ.get("PIXSIM_STREAM_REPLICAS", "1"))
    consumers = [c for c in consumer_plan() if args.service in (None, c.service)]
    auth = connect_options(args.service or "setup")
    if args.plan:
        print(
            json.dumps(
                {
                    "streams": [
                        {"name": s.name, "subjects": s.subjects, "replicas": s.num_replicas}  # type: ignore[attr-defined]
                        for s in stream_plan(replicas)
                    ],
                    "consumers": [
                        {
                            "service": c.service,
                            "stream": c.stream,
                            "durable": c.name,
                            "filter_subject": c.config.filter_subject,
                        }
                        for c in consumers
                    ],  # type: ignore[attr-defined]
                },
                indent=2,
            )
        )
        return 0
    if args.wait:
        return 0 if asyncio.run(wait(nats_url, replicas, consumers, args.timeout, **auth)) else 1
    asyncio.run(declare(nats_url, replicas, consumers, **auth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
