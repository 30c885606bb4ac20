"""Is this failure our own infrastructure being away (NATS or MongoDB), rather than the message's fault?

Consumers wait such outages out: a delivery that failed because NATS or MongoDB did not answer never
counts towards dead-lettering the message (see `consumers.subscribe`), and `/readyz` says not ready
meanwhile. Both clients reconnect by themselves (nats-py with unlimited reconnects, PyMongo's server
selection), so the service resumes when the server is back.
"""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors
from pymongo.errors import ConnectionFailure, OperationFailure

_NATS = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.FlushTimeoutError,
    nats.js.errors.ServiceUnavailableError,
)
#: MongoDB server errors that mean "not now" (a primary stepping down or a server shutting down).
_MONGO_NOT_NOW = {91, 189, 10107, 11600, 11602, 13435, 13436}


def is_outage(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says NATS or MongoDB could not be reached or did not answer."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current, (ConnectionFailure, *_NATS)
        ):  # ConnectionFailure: AutoReconnect, timeouts, ...
            return True
        if isinstance(current, OperationFailure) and current.code in _MONGO_NOT_NOW:
            return True
        if isinstance(current, asyncio.TimeoutError) and _from_nats(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _from_nats(exc: BaseException) -> bool:
    """A bare asyncio timeout raised inside nats-py (a publish or request with no answer)."""
    tb = exc.__traceback__
    while tb is not None:
        if "/nats/" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False
