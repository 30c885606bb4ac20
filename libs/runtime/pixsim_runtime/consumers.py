"""Durable pull consumers with a deliberate ack policy, bounded retries and a dead-letter stream.

Every subscriber in PixSim goes through `subscribe()`:
- the body is validated strictly against the event type, and the subject must be the event's own
  (`pixsim.generations.<generation_id>.<event>`: the subject's id is the body's aggregate id, its last
  token the body's type); anything else goes straight to `pixsim.dlq.<service>` with the reason, and
  the consumer moves on;
- a handler that raises is retried with exponential backoff (`nack(delay=...)`), and after
  `max_attempts` deliveries the message is dead-lettered with the exception as the reason;
- a handler that raises `PollAgain` asks for the same message again later (the poller's schedule);
- otherwise the message is acked after the handler returns.
All replicas of a service share one durable consumer, so work is split between them.

`max_ack_pending` is set on every consumer, never left to JetStream's default: it is how many messages
the consumer hands out without an ack, over all its replicas together, counting messages in a handler
and messages waiting out a retry delay or a `PollAgain`. At the limit JetStream delivers nothing more
(backpressure, never loss) until some are acked. So a handler that keeps messages as timers
(`PollAgain`) caps its own work at this number: the poller therefore keeps its schedule in MongoDB and
acks at once.

No poison loops: a dead letter keeps a bounded excerpt of the body (with its size and SHA-256), so it
always fits the dead-letter stream; if it still cannot be published, the message is retried like a
failure and, after `max_attempts`, terminated after logging. The server's `max_deliver` is a finite
backstop a little above `max_attempts`, for a consumer that dies before it can ack.
"""

from __future__ import annotations

import asyncio
import hashlib
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
from pixsim_contracts.limits import MAX_EVENT_MESSAGE_BYTES
from pydantic import TypeAdapter, ValidationError

from .backoff import backoff
from .broker import inbox_of
from .instrumentation import annotate_current_span
from .outages import is_outage
from .streams import DLQ_MAX_MESSAGE_BYTES

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
    """`max_attempts`: deliveries of a failing message before it is dead-lettered. `max_deliveries`: the
    most deliveries of one message at all, for consumers whose handlers ask to see a message again
    (`PollAgain`: a schedule bounded by a deadline of its own); default `max_attempts`."""

    max_attempts: int = 5
    first_delay: float = 0.5
    max_delay: float = 30.0
    max_deliveries: int | None = None

    def delay(self, attempt: int) -> float:
        return backoff(attempt - 1, self.first_delay, self.max_delay)

    @property
    def deliveries(self) -> int:
        return max(self.max_attempts, self.max_deliveries or 0)

    @property
    def max_deliver(self) -> int:
        """The server's backstop: we give up (dead letter or terminate) after `deliveries` ourselves."""
        return self.deliveries + BACKSTOP_MARGIN


#: Deliveries the server may still make past `max_attempts` (only if an ack never reached it).
BACKSTOP_MARGIN = 2
#: Messages a durable consumer may hand out unacked (all replicas together). JetStream's own default,
#: chosen deliberately: far above replicas x `batch_size` for every service, and a bound on the
#: messages waiting out retries or `PollAgain` delays (dispatcher, webhooks, archive) at any moment.
DEFAULT_MAX_ACK_PENDING = 1000
#: What a dead letter keeps of the body, and of each header.
EXCERPT_BYTES = 4096
MAX_DLQ_HEADERS = 32
MAX_DLQ_HEADER_BYTES = 512


def check_event(adapter: TypeAdapter[Any], subject: str, body: bytes) -> tuple[Any, str | None]:
    """Validate a message as the event `adapter` describes: (event, None), or (None, the reason)."""
    if len(body) > MAX_EVENT_MESSAGE_BYTES:
        return (
            None,
            f"invalid event: body of {len(body)} bytes is over the {MAX_EVENT_MESSAGE_BYTES}-byte limit",
        )
    try:
        event = adapter.validate_json(body)
    except ValidationError as exc:
        return None, f"invalid event: {_short(exc)}"
    expected = event.subject
    if subject != expected:
        return None, (
            f"subject does not match the body: the message came on {subject[:256]!r}, the event "
            f"belongs on {expected!r} ({_aggregate(event)}, type {event.type})"
        )
    return event, None


def _aggregate(event: Any) -> str:
    for name in ("generation_id", "account_id", "credit_type"):
        if getattr(event, name, None) and f".{getattr(event, name)}." in f".{event.subject}.":
            return f"{name} {getattr(event, name)!r}"
    return "its aggregate"


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
    max_ack_pending: int = DEFAULT_MAX_ACK_PENDING,
) -> None:
    """Register `handler(event, msg)` on a durable pull consumer shared by all replicas.

    `keep_alive_s`: while the handler runs, tell JetStream this often that the message is still being
    worked on (`in_progress`), so a handler slower than the ack wait keeps its message.
    `max_ack_pending`: the most messages handed out and not yet acked, over all replicas (see the
    module's docstring); at least `batch_size`, and best well above replicas x `batch_size`."""
    if max_ack_pending < batch_size:
        raise ValueError(
            f"{service}:{durable}: max_ack_pending {max_ack_pending} is below the batch size "
            f"{batch_size}: a fetch could never be filled"
        )
    adapter = event_type if isinstance(event_type, TypeAdapter) else TypeAdapter(event_type)

    async def consume(msg: NatsMessage) -> None:
        attempt = msg.raw_message.metadata.num_delivered or 1
        event, invalid = check_event(adapter, msg.raw_message.subject, msg.body)
        if invalid is None and attempt > retry.deliveries:  # a handler that hung, or acks that never arrived
            invalid = f"delivered {attempt} times without finishing"
        if invalid is not None:
            await _dead_letter(broker, service, msg, invalid, attempt, retry)
            return
        annotate_current_span(event)
        alive = asyncio.create_task(_keep_alive(msg, keep_alive_s)) if keep_alive_s else None
        try:
            holds = 0
            while True:  # an outage is waited out here, holding the message: it costs no delivery
                try:
                    await handler(event, msg)
                    break
                except Exception as exc:
                    if not is_outage(exc):
                        raise
                    holds += 1
                    await _wait_out(service, msg, f"{type(exc).__name__}: {exc}", retry, holds)
        except PollAgain as again:
            if attempt >= retry.deliveries:
                await _dead_letter(
                    broker, service, msg, f"still not finished after {attempt} deliveries", attempt, retry
                )
            else:
                await msg.nack(delay=again.delay)
            return
        except DeadLetter as exc:
            await _dead_letter(broker, service, msg, str(exc), attempt, retry)
            return
        except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
            reason = f"{type(exc).__name__}: {exc}"
            attempt -= OUTAGE_DELIVERIES.get(_key(msg), 0)
            if attempt >= retry.max_attempts:
                log.error(
                    "%s: giving up on %s after %d attempts: %s",
                    service,
                    msg.raw_message.subject,
                    attempt,
                    reason,
                )
                await _dead_letter(
                    broker, service, msg, f"{reason} (after {attempt} attempts)", attempt, retry
                )
            else:
                log.warning(
                    "%s: attempt %d on %s failed, will retry: %s",
                    service,
                    attempt,
                    msg.raw_message.subject,
                    reason,
                )
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
        stream=JStream(stream, declare=False),  # declared by pixsim_runtime.streams, never by FastStream
        durable=durable,
        # A long poll: messages still arrive at once. Longer than the event-loop stalls seen under load,
        # because nats-py then raises a bare asyncio.TimeoutError that FastStream does not expect.
        pull_sub=PullSub(batch_size=batch_size, timeout=5.0),
        # Up to `batch_size` handlers at once, each message started as soon as it arrives and the next
        # fetch made while they run: no batch barrier (a plain pull loop waits for its whole batch, so one
        # slow provider call held up every message fetched with it).
        max_workers=batch_size,
        # Bounded by us (to dead-letter with a reason), and by the server as a backstop.
        config=ConsumerConfig(
            max_deliver=retry.max_deliver, ack_wait=ack_wait_s, max_ack_pending=max_ack_pending
        ),
        ack_policy=AckPolicy.MANUAL,
        inbox_prefix=inbox_of(broker),  # this service's NATS user may read only its own inboxes
        title=f"{service}:{durable}",
        decoder=_the_message,
    )(consume)


async def _the_message(msg: NatsMessage) -> NatsMessage:
    """The "decoded body" FastStream hands to `consume`: the message itself. The broker injects nothing
    (`apply_types=False`, see `make_broker`), and `consume` validates the raw body once, by its type.
    (`consume` keeps FastStream's `NatsMessage` annotation, a context one, so that the AsyncAPI document
    does not take the message for a payload.)"""
    return msg


#: Deliveries of a message (by stream and sequence) that failed only because NATS or MongoDB was away,
#: subtracted from its delivery count before dead-lettering. Per process: after a restart an outage
#: may count again, which only ever means a few more retries, never a dead letter for an outage alone.
OUTAGE_DELIVERIES: Counter[tuple[str, int]] = Counter()
OUTAGE_MAX_DELAY_S = 5.0


def _key(msg: NatsMessage) -> tuple[str, int]:
    meta = msg.raw_message.metadata
    return meta.stream, meta.sequence.stream


async def _wait_out(service: str, msg: NatsMessage, reason: str, retry: RetryPolicy, holds: int) -> None:
    """NATS or MongoDB is away: keep the message (telling JetStream every second that it is still being
    worked on) and wait, then the caller runs the handler again. Holding rather than nacking means an
    outage of any length costs no delivery, so the finite `max_deliver` backstop never runs out on a
    legitimate message; if NATS itself is down, the message comes back once, after the ack wait."""
    delay = min(retry.delay(holds), OUTAGE_MAX_DELAY_S)
    log.warning(
        "%s: NATS or MongoDB unavailable on %s, will retry in %.1fs (not counted): %s",
        service,
        msg.raw_message.subject,
        delay,
        reason,
    )
    deadline = asyncio.get_running_loop().time() + delay
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            await msg.in_progress()
        except Exception as exc:  # noqa: BLE001 - NATS itself is away: nothing to tell it
            log.debug("in_progress failed: %s", exc)
        await asyncio.sleep(min(1.0, left))


async def _keep_alive(msg: NatsMessage, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await msg.in_progress()
        except Exception as exc:  # noqa: BLE001 - best effort: the ack wait is the fallback
            log.debug("in_progress failed: %s", exc)


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:10])[
        :2000
    ]


def _cut(text: str, limit: int) -> str:
    raw = text.encode("utf-8", errors="replace")
    return text if len(raw) <= limit else raw[:limit].decode("utf-8", errors="ignore")


def dead_letter_record(
    service: str,
    subject: str,
    stream: str,
    seq: int,
    attempt: int,
    reason: str,
    headers: dict[str, str] | None,
    body: bytes,
) -> bytes:
    """The dead letter of a message, always under the dead-letter stream's message limit: an excerpt of
    the body (all of it when short) with the body's size and SHA-256, and bounded headers."""
    kept: dict[str, str] = {}
    for key, value in list((headers or {}).items())[:MAX_DLQ_HEADERS]:
        if key.lower() != "authorization":
            kept[_cut(str(key), 128)] = _cut(str(value), MAX_DLQ_HEADER_BYTES)
    excerpt = body[:EXCERPT_BYTES]
    record = {
        "reason": _cut(reason, 2000),
        "service": service,
        "subject": _cut(subject, 512),
        "stream": stream,
        "stream_seq": seq,
        "deliveries": attempt,
        "dead_lettered_at": datetime.now(UTC).isoformat(),
        "headers": kept,
        "body": excerpt.decode("utf-8", errors="replace"),
        "body_bytes": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_truncated": len(body) > len(excerpt),
    }
    # JSON escapes can make even these bounds grow (a control byte is 6 characters): shed the headers,
    # then most of the excerpt, until it fits; the size and hash always stay.
    for shrink in (
        {},
        {"headers": {}},
        {"body": excerpt[:512].decode("utf-8", errors="replace")},
        {"body": ""},
    ):
        record.update(shrink)
        record["body_truncated"] = len(record["body"].encode("utf-8", errors="replace")) < len(body) or (
            len(body) > len(excerpt)
        )
        encoded = json.dumps(record, ensure_ascii=False).encode("utf-8", errors="replace")
        if len(encoded) <= DLQ_MAX_MESSAGE_BYTES - 1024:  # room for the publish's headers
            break
    return encoded


async def _dead_letter(
    broker: NatsBroker, service: str, msg: NatsMessage, reason: str, attempt: int, retry: RetryPolicy
) -> None:
    """Copy the message to `pixsim.dlq.<service>` with the reason, then ack the original.

    If the dead letter cannot be published, the message is tried again later, and after
    `retry.deliveries` deliveries it is terminated (logged, never redelivered)."""
    meta = msg.raw_message.metadata
    subject = msg.raw_message.subject
    record = dead_letter_record(
        service,
        subject,
        meta.stream,
        meta.sequence.stream,
        attempt,
        reason,
        msg.raw_message.headers,
        msg.body,
    )
    try:
        await broker.publish(
            record,
            subjects.dlq(service),
            stream=subjects.DLQ_STREAM,
            headers={"Nats-Msg-Id": f"dlq:{service}:{meta.stream}:{meta.sequence.stream}"},
            timeout=10.0,
        )
    except Exception as exc:  # noqa: BLE001 - whatever the failure, the message must not loop for ever
        if attempt >= retry.deliveries:
            log.error(
                "%s: could not dead-letter %s (seq %s) after %d attempts, terminating it: %s: %s; "
                "reason was: %s",
                service,
                subject,
                meta.sequence.stream,
                attempt,
                type(exc).__name__,
                exc,
                reason,
            )
            await msg.reject()
        else:
            log.warning(
                "%s: could not dead-letter %s (seq %s), will retry: %s: %s",
                service,
                subject,
                meta.sequence.stream,
                type(exc).__name__,
                exc,
            )
            await msg.nack(delay=retry.delay(attempt))
        return
    log.error("%s: dead-lettered %s (seq %s): %s", service, subject, meta.sequence.stream, reason)
    await msg.ack()


def _fetch_times_out_as_nats_expects() -> None:
    """nats-py's `PullSubscription.fetch` sometimes raises a bare `asyncio.TimeoutError` (when its deadline
    is spent before the lingering pull request is sent) where it otherwise raises `nats.errors.TimeoutError`.
    FastStream's pull loop suppresses only the latter, so the bare one ends the loop: its supervisor
    restarts it after a pause, the consumer fetches nothing meanwhile, and a message the server handed to
    the abandoned request comes back only after the ack wait. Seen in tests as credit events booked 30 s+
    late. One place, process-wide: the bare timeout is re-raised as the one FastStream expects."""
    import nats.errors
    from nats.js.client import JetStreamContext

    pull = JetStreamContext.PullSubscription
    if getattr(pull.fetch, "_pixsim_timeouts", False):
        return
    original = pull.fetch

    async def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError as exc:
            raise nats.errors.TimeoutError from exc

    fetch._pixsim_timeouts = True  # type: ignore[attr-defined]
    pull.fetch = fetch  # type: ignore[method-assign]


_fetch_times_out_as_nats_expects()
