"""The JetStream streams, declared in one place by every service before it publishes or subscribes."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from pixsim_contracts import subjects

log = logging.getLogger(__name__)

#: How long JetStream remembers a Nats-Msg-Id to drop duplicates (upstream retries, our own re-publishes).
DUPLICATE_WINDOW_S = 15 * 60


def stream_configs(replicas: int = 1) -> list[StreamConfig]:
    return [
        StreamConfig(
            name=name,
            subjects=[subject],
            retention=RetentionPolicy.LIMITS,  # the event log: kept, replayable, shared by many consumers
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            duplicate_window=DUPLICATE_WINDOW_S,
            num_replicas=replicas,
        )
        for name, subject in subjects.STREAM_SUBJECTS.items()
    ]


async def declare_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create each stream, or update it to this config; safe to run from every replica at once."""
    for config in stream_configs(replicas):
        try:
            await js.stream_info(config.name)
            await js.update_stream(config)
        except NotFoundError:
            try:
                await js.add_stream(config)
            except BadRequestError as exc:  # another replica won the race; anything else is real
                if exc.err_code != 10058:  # stream name already in use
                    raise
