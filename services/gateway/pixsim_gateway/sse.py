"""Server-Sent Events for one generation, read straight from its JetStream subject.

Subjects name the aggregate (`pixsim.generations.<id>.<event>`), so an ordered consumer on
`pixsim.generations.<id>.*` with "deliver all" replays the generation's history and then follows it
live. The stream ends after the terminal event, or when the client goes away.

Only valid events of this generation are sent: anything else on its subjects (not JSON, a JSON array,
another generation's event, an event that fails its schema) is logged and skipped, and the stream goes on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from fastapi import Request
from faststream.nats import NatsBroker
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import DeliverPolicy
from pixsim_contracts import TERMINAL_GENERATION_EVENTS, AnyGenerationEvent, subjects
from pixsim_runtime.consumers import check_event

log = logging.getLogger(__name__)


def sse_frame(event: str, data: str, event_id: str | None = None) -> bytes:
    lines = [f"event: {event}"]
    if event_id:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return ("\n".join(lines) + "\n\n").encode()


async def generation_event_stream(
    broker: NatsBroker, generation_id: str, request: Request, keepalive_s: float
) -> AsyncIterator[bytes]:
    js = broker.connection.jetstream()
    sub = await js.subscribe(subjects.generation(generation_id), stream=subjects.GENERATIONS_STREAM,
                             ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    requested = False
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=keepalive_s)
            except (TimeoutError, NatsTimeoutError):
                if await request.is_disconnected():
                    return
                yield b": keep-alive\n\n"
                continue
            event, invalid = check_event(AnyGenerationEvent, msg.subject, msg.data)
            if invalid is None and event.type == "generation.requested":
                invalid = "a second request for this generation (the first one stands)" if requested else None
                requested = True
            if invalid is not None:  # the consumers dead-letter it; here it is only skipped
                log.warning("SSE for %s: skipped message %s on %s: %s", generation_id,
                            msg.metadata.sequence.stream, msg.subject, invalid)
                continue
            yield sse_frame(event.type, msg.data.decode(errors="replace"), event.event_id)
            if event.type.split(".", 1)[1] in TERMINAL_GENERATION_EVENTS:
                return
    finally:
        await sub.unsubscribe()
