"""Server-Sent Events for one generation, read straight from its JetStream subject.

Subjects name the aggregate (`pixsim.generations.<id>.<event>`), so an ordered consumer on
`pixsim.generations.<id>.*` with "deliver all" replays the generation's history and then follows it
live. The stream ends after the terminal event, or when the client goes away. A client that
reconnects with `Last-Event-ID` gets only the events after that one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import Request
from faststream.nats import NatsBroker
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import DeliverPolicy
from pixsim_contracts import TERMINAL_GENERATION_EVENTS, subjects


def sse_frame(event: str, data: str, event_id: str | None = None) -> bytes:
    lines = [f"event: {event}"]
    if event_id:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return ("\n".join(lines) + "\n\n").encode()


async def generation_event_stream(
    broker: NatsBroker, generation_id: str, request: Request, keepalive_s: float,
    last_event_id: str | None = None,
) -> AsyncIterator[bytes]:
    js = broker.connection.jetstream()
    sub = await js.subscribe(subjects.generation(generation_id), ordered_consumer=True,
                             deliver_policy=DeliverPolicy.ALL)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=keepalive_s)
            except (TimeoutError, NatsTimeoutError):
                if await request.is_disconnected():
                    return
                yield b": keep-alive\n\n"
                continue
            kind = msg.subject.rsplit(".", 1)[-1]
            try:
                event_id = json.loads(msg.data).get("event_id")
            except ValueError:
                continue  # a malformed upstream message: the dispatcher dead-letters it; skip it here
            terminal = kind in TERMINAL_GENERATION_EVENTS
            if last_event_id is not None:  # a resumed stream: skip what the client already has
                if event_id == last_event_id:
                    last_event_id = None
                    if terminal:
                        return
                    continue
                if not terminal:  # an unknown id never hides the end of the stream
                    continue
            yield sse_frame(f"generation.{kind}", msg.data.decode(), event_id)
            if terminal:
                return
    finally:
        await sub.unsubscribe()
