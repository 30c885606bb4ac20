"""Every durable consumer the services create sets `max_ack_pending` deliberately (pixsim_runtime.consumers)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from pixsim_contracts import GenerationRequested, subjects
from pixsim_runtime.consumers import DEFAULT_MAX_ACK_PENDING, RetryPolicy, subscribe

ROOT = Path(__file__).resolve().parents[2]


def _setup_job():
    spec = importlib.util.spec_from_file_location(
        "pixsim_test_setup_max_ack", ROOT / "deploy/image/jetstream_setup.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_every_planned_consumer_has_an_explicit_max_ack_pending() -> None:
    plan = _setup_job().consumer_plan()
    assert plan
    for consumer in plan:
        assert consumer.config.max_ack_pending, f"{consumer.service}:{consumer.name} leaves it to the server"


class _Broker:
    def subscriber(self, *args, **kwargs):
        self.options = kwargs
        return lambda func: func


def _subscribe(**extra) -> _Broker:
    broker = _Broker()

    async def handler(event, msg) -> None:
        return None

    subscribe(
        broker,
        service="dispatcher",
        subject=subjects.generation_events("requested"),  # type: ignore[arg-type]
        stream=subjects.GENERATIONS_STREAM,
        durable="dispatcher",
        event_type=GenerationRequested,
        handler=handler,
        retry=RetryPolicy(),
        **extra,
    )
    return broker


def test_the_default_and_an_explicit_limit_reach_the_consumer_config() -> None:
    assert _subscribe().options["config"].max_ack_pending == DEFAULT_MAX_ACK_PENDING
    assert _subscribe(max_ack_pending=20, batch_size=5).options["config"].max_ack_pending == 20


def test_a_limit_below_the_batch_size_is_refused() -> None:
    with pytest.raises(ValueError, match="below the batch size"):
        _subscribe(max_ack_pending=10, batch_size=20)
