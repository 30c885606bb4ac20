"""The NATS broker every service uses: traced, with a deliberate publish path."""

from __future__ import annotations

import logging
import weakref

from faststream.nats import NatsBroker
from faststream.nats.security import NatsUserPassword
from opentelemetry.trace import TracerProvider
from pixsim_contracts import Event, subjects

from .instrumentation import PixsimTelemetryMiddleware, count_published
from .settings import BaseServiceSettings
from .telemetry import traced

PUBLISH_TIMEOUT_S = 10.0  # FastStream's default PubAck timeout (0.5 s) is too short under load

#: Each broker's reply-inbox prefix (its NATS user may subscribe only under it).
_INBOXES: weakref.WeakKeyDictionary[NatsBroker, str] = weakref.WeakKeyDictionary()


def make_broker(settings: BaseServiceSettings, tracer_provider: TracerProvider | None = None) -> NatsBroker:
    """The service's broker, connected as its own NATS user (see `bus_auth`)."""
    user, password, inbox = settings.nats_connection()
    broker = NatsBroker(
        settings.nats_url,
        security=NatsUserPassword(user, password) if password is not None else None,
        inbox_prefix=inbox,
        # Consume and publish spans cost ~8% of a generation's CPU; without an exporter they are left out.
        middlewares=[PixsimTelemetryMiddleware(tracer_provider=tracer_provider)]
        if traced(tracer_provider)
        else [],
        # Per-message access logs cost ~30% throughput (measured); errors are logged by our consumers.
        log_level=logging.DEBUG,
        max_reconnect_attempts=-1,
        name=settings.service_name,
        # No FastDepends: it resolves an injected message (`Context`) with a sync call that it runs in a
        # worker thread, a thread round trip per message (with the GIL handed back and forth), and FastStream
        # then JSON-decoded every body that `consume` validates anyway. Our one handler (`consumers.consume`)
        # takes the message as its "decoded body" instead.
        apply_types=False,
    )
    _INBOXES[broker] = inbox
    return broker


def inbox_of(broker: NatsBroker) -> bytes:
    """The prefix for a subscriber's delivery inbox on this broker (FastStream's default is `_INBOX.`)."""
    return (_INBOXES.get(broker, "_INBOX") + ".").encode()


async def publish_event(broker: NatsBroker, event: Event, *, msg_id: str | None = None) -> None:
    """Publish an event to its subject, waiting for JetStream's ack.

    `Nats-Msg-Id` defaults to the event id, so a retried publish of the same event is dropped by
    JetStream inside its duplicate window.
    """
    subject = event.subject  # type: ignore[attr-defined]
    await broker.publish(
        event.model_dump_json().encode(),
        subject,
        stream=subjects.stream_of(subject),
        headers={"Nats-Msg-Id": msg_id or event.event_id, "content-type": "application/json"},
        timeout=PUBLISH_TIMEOUT_S,
    )
    count_published(event)


async def publish_events(broker: NatsBroker, events: list[Event]) -> None:
    """Publish a handler's events one after another, in list order, each acked before the next.

    Not concurrently, on purpose: handlers list the credit events before the status that ends a job, and
    a reader who sees `completed` expects its charge in the read model too. Published together, the two
    streams' consumers project them in either order (a client's `run()` saw a generation without its
    charge). The cost is one PubAck round trip per event."""
    for event in events:
        await publish_event(broker, event)
