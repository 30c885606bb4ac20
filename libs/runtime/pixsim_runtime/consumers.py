"""Durable pull consumers with a deliberate ack policy, bounded retries and a dead-letter stream.

Every subscriber in PixSim goes through `subscribe()`:
- the body is validated against the event type; an invalid body goes straight to `pixsim.dlq.<service>`
  with the validation error, and the consumer moves on;
- a handler that raises is retried with exponential backoff (`nack(delay=...)`), and after
  `max_attempts` deliveries the message is dead-lettered with the exception as the reason;
- a handler that raises `PollAgain` asks for the same message again later (the poller's schedule);
- otherwise the message is acked after the handler returns.
All replicas of a service share one durable consumer, so work is split between them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, PullSub
from pixsim_contracts import subjects
from pydantic import TypeAdapter, ValidationError

from .instrumentation import annotate_current_span
from .outages import is_outage

log = logging.getLogger(__name__)

Handler = Callable[[Any, NatsMessage], Awaitable[None]]

#: The durable consumers each broker subscribed, for the queue-lag gauge.
DURABLES: weakref.WeakKeyDictionary[NatsBroker, list[tuple[str, str]]] = weakref.WeakKeyDictionary()


class PollAgain(Exception):
    """Raised by a handler to see the same message again after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"poll again in {delay:.2f}s")
        self.delay = delay


class DeadLetter(Exception):
    """Raised by a handler for a message that can never succeed; it goes to the DLQ at once."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    first_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.first_delay * 2 ** (attempt - 1), self.max_delay)


def subscribe(
    broker: NatsBroker,
    *,
    service: str,
    subject: str,
    stream: str,
    durable: str,
    event_type: Any,
    handler: Handler,
    retry: RetryPolicy,
    batch_size: int = 20,
    ack_wait_s: float = 60.0,
    keep_alive_s: float | None = None,
) -> None:
    """Register `handler(event, msg)` on a durable pull consumer shared by all replicas.

    `keep_alive_s`: while the handler runs, tell JetStream this often that the message is still being
    worked on (`in_progress`), so a handler slower than the ack wait keeps its message."""
    adapter = event_type if isinstance(event_type, TypeAdapter) else TypeAdapter(event_type)

    async def consume(msg: NatsMessage) -> None:
        attempt = msg.raw_message.metadata.num_delivered or 1
        try:
            event = adapter.validate_json(msg.body)
        except ValidationError as exc:
            await _dead_letter(broker, service, msg, f"invalid event: {_short(exc)}", attempt)
            return
        annotate_current_span(event)
        alive = asyncio.create_task(_keep_alive(msg, keep_alive_s)) if keep_alive_s else None
        try:
            await handler(event, msg)
        except PollAgain as again:
            await msg.nack(delay=again.delay)
            return
        except DeadLetter as exc:
            await _dead_letter(broker, service, msg, str(exc), attempt)
            return
        except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
            reason = f"{type(exc).__name__}: {exc}"
            if is_outage(exc):  # NATS or MongoDB away: wait it out; this delivery does not count
                await _wait_out(service, msg, reason, retry)
                return
            attempt -= OUTAGE_DELIVERIES.get(_key(msg), 0)
            if attempt >= retry.max_attempts:
                log.error("%s: giving up on %s after %d attempts: %s", service, msg.raw_message.subject, attempt, reason)
                await _dead_letter(broker, service, msg, f"{reason} (after {attempt} attempts)", attempt)
            else:
                log.warning("%s: attempt %d on %s failed, will retry: %s", service, attempt, msg.raw_message.subject, reason)
                await msg.nack(delay=retry.delay(attempt))
            return
        finally:
            if alive is not None:
                alive.cancel()
        try:
            await msg.ack()
        except Exception as exc:
            if not is_outage(exc):
                raise
            OUTAGE_DELIVERIES[_key(msg)] += 1  # it comes back after the ack wait; the handler is idempotent
            log.warning("%s: could not ack %s (NATS away): %s", service, msg.raw_message.subject, exc)
            return
        OUTAGE_DELIVERIES.pop(_key(msg), None)

    consume.__name__ = f"{service}_{durable}"
    DURABLES.setdefault(broker, []).append((stream, durable))
    broker.subscriber(
        subject,
        stream=JStream(stream, declare=False),  # declared once by streams.declare_streams
        durable=durable,
        # A long poll: messages still arrive at once. Longer than the event-loop stalls seen under load,
        # because nats-py then raises a bare asyncio.TimeoutError that FastStream does not expect.
        pull_sub=PullSub(batch_size=batch_size, timeout=5.0),
        config=ConsumerConfig(max_deliver=-1, ack_wait=ack_wait_s),  # bounded by us, to dead-letter with a reason
        ack_policy=AckPolicy.MANUAL,
        title=f"{service}:{durable}",
    )(consume)


#: Deliveries of a message (by stream and sequence) that failed only because NATS or MongoDB was away,
#: subtracted from its delivery count before dead-lettering. Per process: after a restart an outage
#: may count again, which only ever means a few more retries, never a dead letter for an outage alone.
OUTAGE_DELIVERIES: Counter[tuple[str, int]] = Counter()
OUTAGE_MAX_DELAY_S = 5.0


def _key(msg: NatsMessage) -> tuple[str, int]:
    meta = msg.raw_message.metadata
    return meta.stream, meta.sequence.stream


async def _wait_out(service: str, msg: NatsMessage, reason: str, retry: RetryPolicy) -> None:
    key = _key(msg)
    OUTAGE_DELIVERIES[key] += 1
    delay = min(retry.delay(OUTAGE_DELIVERIES[key]), OUTAGE_MAX_DELAY_S)
    log.warning("%s: NATS or MongoDB unavailable on %s, will retry in %.1fs (not counted): %s",
                service, msg.raw_message.subject, delay, reason)
    try:
        await msg.nack(delay=delay)
    except Exception as exc:  # noqa: BLE001 - NATS itself is away: the ack wait brings the message back
        log.debug("nack failed: %s", exc)


async def _keep_alive(msg: NatsMessage, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await msg.in_progress()
        except Exception as exc:  # noqa: BLE001 - best effort: the ack wait is the fallback
            log.debug("in_progress failed: %s", exc)


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:10])


async def _dead_letter(broker: NatsBroker, service: str, msg: NatsMessage, reason: str, attempt: int) -> None:
    """Copy the message to `pixsim.dlq.<service>` with the reason, then ack the original."""
    meta = msg.raw_message.metadata
    body = msg.body.decode("utf-8", errors="replace")
    record = {
        "reason": reason,
        "service": service,
        "subject": msg.raw_message.subject,
        "stream": meta.stream,
        "stream_seq": meta.sequence.stream,
        "deliveries": attempt,
        "dead_lettered_at": datetime.now(UTC).isoformat(),
        "headers": {k: v for k, v in (msg.raw_message.headers or {}).items() if k.lower() != "authorization"},
        "body": body,
    }
    await broker.publish(
        json.dumps(record).encode(),
        subjects.dlq(service),
        stream=subjects.DLQ_STREAM,
        headers={"Nats-Msg-Id": f"dlq:{service}:{meta.stream}:{meta.sequence.stream}"},
        timeout=10.0,
    )
    log.error("%s: dead-lettered %s (seq %s): %s", service, record["subject"], record["stream_seq"], reason)
    await msg.ack()
