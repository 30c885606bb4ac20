"""Which failures are outages of our own servers (never counted towards dead-lettering) and which are not."""

from __future__ import annotations

import nats.errors
import nats.js.errors
from pixsim_runtime.outages import is_outage
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)


def test_nats_and_mongodb_being_away_are_outages():
    for exc in (
        ServerSelectionTimeoutError("no server"),
        AutoReconnect("closed"),
        NetworkTimeout("slow"),
        OperationFailure("not primary", code=10107),
        nats.errors.TimeoutError(),
        nats.errors.ConnectionClosedError(),
        nats.errors.NoRespondersError(),
        nats.js.errors.ServiceUnavailableError(),
    ):
        assert is_outage(exc), exc


def test_an_outage_behind_another_exception_is_still_one():
    try:
        try:
            raise ServerSelectionTimeoutError("no server")
        except ServerSelectionTimeoutError as inner:
            raise RuntimeError("could not book") from inner
    except RuntimeError as outer:
        assert is_outage(outer)


def test_the_messages_own_faults_are_not_outages():
    for exc in (
        ValueError("bad"),
        KeyError("x"),
        DuplicateKeyError("dup"),
        OperationFailure("bad query", code=2),
        TimeoutError("a provider, not us"),
    ):
        assert not is_outage(exc), exc
