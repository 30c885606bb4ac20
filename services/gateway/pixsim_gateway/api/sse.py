"""Server-Sent Events for one generation, read straight from its JetStream subject.

Subjects name the aggregate (`pixsim.generations.<id>.<event>`), so a consumer on
`pixsim.generations.<id>.*` with "deliver all" replays the generation's history and then follows it
live. The stream ends after the terminal event, or when the client goes away.

The consumer is an ephemeral *pull* consumer created under a name of our own (`sse-<random>`), not an
ordered push consumer: nats-py creates those on the JetStream API subject without a name, where the
name travels in the body and no subject permission can stop a client from re-configuring somebody
else's durable consumer. Named, the create subject carries the name, and the gateway's NATS user is
denied the other services' durable names (pixsim_runtime.bus_auth).

Only valid events of this generation are sent: anything else on its subjects (not JSON, a JSON array,
another generation's event, an event that fails its schema) is logged and skipped, and the stream goes on.
A client that reconnects with `Last-Event-ID` gets only the events after that one.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

from fastapi import Request
from faststream.nats import NatsBroker
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pixsim_contracts import TERMINAL_GENERATION_EVENTS, AnyGenerationEvent, subjects
from pixsim_runtime.broker import inbox_of
from pixsim_runtime.consumers import check_event

log = logging.getLogger(__name__)


def sse_frame(event: str, data: str, event_id: str | None = None) -> bytes:
    lines = [f"event: {event}"]
    if event_id:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return ("\n".join(lines) + "\n\n").encode()


async def generation_event_stream(
    broker: NatsBroker,
    generation_id: str,
    request: Request,
    keepalive_s: float,
    last_event_id: str | None = None,
) -> AsyncIterator[bytes]:
    js = broker.connection.jetstream()
    stream, name = subjects.GENERATIONS_STREAM, f"sse-{secrets.token_hex(8)}"
    # Gone by itself soon after its client if the delete below never runs (the gateway died).
    config = ConsumerConfig(
        name=name,
        filter_subject=subjects.generation(generation_id),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE,
        mem_storage=True,
        num_replicas=1,
        inactive_threshold=max(60.0, 4 * keepalive_s),
    )
    await js.add_consumer(stream, config)
    sub = await js.pull_subscribe_bind(consumer=name, stream=stream, inbox_prefix=inbox_of(broker))
    try:
        async for chunk in _frames(sub, generation_id, request, keepalive_s, last_event_id):
            yield chunk
    finally:
        await sub.unsubscribe()
        with suppress(Exception):  # best effort: the inactive threshold removes it anyway
            await js.delete_consumer(stream, name)


async def _frames(
    sub: Any, generation_id: str, request: Request, keepalive_s: float, last_event_id: str | None
) -> AsyncIterator[bytes]:
    requested = False
    while True:
        try:
            batch = await sub.fetch(20, timeout=keepalive_s)
        except (TimeoutError, NatsTimeoutError):
            if await request.is_disconnected():
                return
            yield b": keep-alive\n\n"
            continue
        for msg in batch:
            event, invalid = check_event(AnyGenerationEvent, msg.subject, msg.data)
            if invalid is None and event.type == "generation.requested":
                invalid = "a second request for this generation (the first one stands)" if requested else None
                requested = True
            if invalid is not None:  # the consumers dead-letter it; here it is only skipped
                log.warning(
                    "SSE for %s: skipped message %s on %s: %s",
                    generation_id,
                    msg.metadata.sequence.stream,
                    msg.subject,
                    invalid,
                )
                continue
            terminal = event.type.split(".", 1)[1] in TERMINAL_GENERATION_EVENTS
            if last_event_id is not None:  # a resumed stream: skip what the client already has
                if event.event_id == last_event_id:
                    last_event_id = None
                    if terminal:
                        return
                    continue
                if not terminal:  # an unknown id never hides the end of the stream
                    continue
            yield sse_frame(event.type, msg.data.decode(errors="replace"), event.event_id)
            if terminal:
                return
