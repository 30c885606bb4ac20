"""Publish `GenerationRequested` to PixSim from another system, with plain nats-py (no PixSim code).

    NATS_URL=nats://nats.pixsim.svc:4222 NATS_PASSWORD=... python publish_generation_requested.py order-4711

It connects as the NATS user `upstream`, which may publish `pixsim.generations.*.requested` and nothing
else, and read replies only under its own inbox prefix `_INBOX.upstream`.

The README's "Publishing GenerationRequested from another system" shows this file; a test runs it
against a real nats-server, so the example keeps working.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime

import nats


def generation_requested(generation_id: str) -> dict:
    """The event body: docs/schemas/generation.requested.json is its JSON Schema."""
    return {
        "event_id": uuid.uuid4().hex,  # unique per event
        "type": "generation.requested",
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "generation_id": generation_id,  # yours to choose: [A-Za-z0-9_-]{1,128}, one per job
        "provider_id": "sim",
        "operation_type": "text_to_video",
        "params": {"prompt": "a fox in the snow", "duration": 5},
    }


async def publish(nats_url: str, generation_id: str, password: str) -> bool:
    """Publish once and wait for JetStream's ack; True if JetStream dropped it as a duplicate."""
    nc = await nats.connect(nats_url, user="upstream", password=password, inbox_prefix="_INBOX.upstream")
    try:
        ack = await nc.jetstream().publish(
            f"pixsim.generations.{generation_id}.requested",
            json.dumps(generation_requested(generation_id)).encode(),
            # Nats-Msg-Id = the generation id: a retry of this publish (same id) is dropped by JetStream.
            headers={"Nats-Msg-Id": generation_id, "content-type": "application/json"},
            timeout=10,
        )
        return bool(ack.duplicate)
    finally:
        await nc.close()


if __name__ == "__main__":
    gid = sys.argv[1] if len(sys.argv) > 1 else uuid.uuid4().hex
    duplicate = asyncio.run(
        publish(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"), gid, os.environ["NATS_PASSWORD"])
    )
    print(f"generation {gid}: {'duplicate, dropped' if duplicate else 'accepted'}")
