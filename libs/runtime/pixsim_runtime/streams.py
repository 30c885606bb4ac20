"""The JetStream streams, declared in one place.

`declare_streams` creates or updates them (the `setup` NATS user: the Kubernetes Job, `make run`);
`ensure_streams`, which every service runs at start-up, only creates a stream that is missing, so a
service's NATS user never needs the right to change a stream's limits.

Limits: every event stream refuses a message over `MAX_EVENT_MESSAGE_BYTES` (a valid event is far
smaller: see `pixsim_contracts.limits`), so an oversized body never reaches a consumer; the event
streams keep everything (they are the event log); the dead-letter stream keeps `DLQ_MAX_AGE_S` and at
most `DLQ_MAX_BYTES`, dropping the oldest first, and each dead letter is at most `DLQ_MAX_MESSAGE_BYTES`.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from pixsim_contracts import subjects
from pixsim_contracts.limits import MAX_EVENT_MESSAGE_BYTES

log = logging.getLogger(__name__)

#: How long JetStream remembers a Nats-Msg-Id to drop duplicates (upstream retries, our own re-publishes).
DUPLICATE_WINDOW_S = 15 * 60
DLQ_MAX_MESSAGE_BYTES = 64 * 1024
DLQ_MAX_AGE_S = 30 * 24 * 3600
DLQ_MAX_BYTES = 1024**3


def stream_configs(replicas: int = 1) -> list[StreamConfig]:
    configs = []
    for name, subject in subjects.STREAM_SUBJECTS.items():
        dlq = name == subjects.DLQ_STREAM
        configs.append(
            StreamConfig(
                name=name,
                subjects=[subject],
                retention=RetentionPolicy.LIMITS,  # the event log: kept, replayable, shared by many consumers
                storage=StorageType.FILE,
                discard=DiscardPolicy.OLD,
                duplicate_window=DUPLICATE_WINDOW_S,
                num_replicas=replicas,
                max_msg_size=DLQ_MAX_MESSAGE_BYTES if dlq else MAX_EVENT_MESSAGE_BYTES,
                max_age=DLQ_MAX_AGE_S if dlq else None,
                max_bytes=DLQ_MAX_BYTES if dlq else None,
            )
        )
    return configs


async def declare_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create each stream, or update it to this config; safe to run from every replica at once."""
    for config in stream_configs(replicas):
        try:
            await js.stream_info(config.name)
            await js.update_stream(config)
        except NotFoundError:
            await _create(js, config)


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create each stream that does not exist yet; never change one that does."""
    for config in stream_configs(replicas):
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await _create(js, config)


async def _create(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError as exc:  # another replica won the race; anything else is real
        if exc.err_code != 10058:  # stream name already in use
            raise
