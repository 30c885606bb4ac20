"""Outboxes: events stored in the same atomic write as the state change that caused them, and published
after it. Whoever finds them still there publishes them again under the same event ids, and JetStream
drops the duplicate.

Two uses share this module: a queue drained as it is published (`flush`: account events, billing's
balance notices), and a decision kept with its record and published again on every redelivery (the
dispatcher's and poller's outcomes, which `decode` reads back).

One encoding: each event as its JSON string. nx-27017, the local MongoDB wire server, stores a `$push`ed
document as a JSON string anyway, and a string round-trips on every server. Entries that earlier
versions wrote as JSON objects still decode.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from faststream.nats import NatsBroker
from pixsim_contracts import AnyEvent, Event
from pymongo.asynchronous.collection import AsyncCollection

from .broker import publish_event

OUTBOX = "outbox"


def encode(events: Iterable[Event]) -> list[str]:
    return [event.model_dump_json() for event in events]


def decode(entries: Iterable[str | dict[str, Any]] | None) -> list[Event]:
    return [
        AnyEvent.validate_json(e) if isinstance(e, str) else AnyEvent.validate_python(e)
        for e in entries or ()
    ]


async def flush(collection: AsyncCollection, broker: NatsBroker, doc: dict[str, Any]) -> None:
    """Publish the document's pending events in order, each removed from its outbox once published."""
    for pending in doc.get(OUTBOX) or []:
        await publish_event(broker, decode([pending])[0])
        await collection.update_one({"_id": doc["_id"]}, {"$pull": {OUTBOX: pending}})
