"""One outbox encoding: events round-trip as JSON strings, and entries stored as JSON objects by earlier
versions (the dispatcher's and poller's decided outcomes) still read back as the same events."""

from __future__ import annotations

from pixsim_contracts import ErrorInfo, GenerationFailed, GenerationProgressed
from pixsim_runtime import outbox


def test_events_round_trip_and_old_entries_still_decode():
    events = [
        GenerationProgressed(generation_id="g1", progress=0.5),
        GenerationFailed(generation_id="g1", provider_id="sim", error=ErrorInfo(code="x", message="y")),
    ]
    stored = outbox.encode(events)
    assert all(isinstance(entry, str) for entry in stored)
    assert outbox.decode(stored) == events
    old = [e.model_dump(mode="json") for e in events]
    assert outbox.decode(old) == events
    assert outbox.decode([old[0], stored[1]]) == events
    assert outbox.decode(None) == []
