"""No poison loops, without servers: a dead letter always fits, and a message whose dead letter cannot be
written is retried a bounded number of times, then terminated, never redelivered for ever."""

from __future__ import annotations

import hashlib
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from pixsim_contracts import GenerationRequested, subjects
from pixsim_runtime import consumers
from pixsim_runtime.consumers import RetryPolicy, dead_letter_record, subscribe
from pixsim_runtime.streams import DLQ_MAX_MESSAGE_BYTES


@pytest.mark.parametrize("size", [0, 10, 4096, 4097, 256 * 1024, 1024 * 1024 - 1, 16 * 1024 * 1024])
def test_a_dead_letter_always_fits_the_dead_letter_stream(size: int) -> None:
    body = (b"\xe2\x82\xac" * (size // 3 + 1))[:size]  # multi-byte UTF-8, cut mid-character
    headers = {f"X-Big-{i}": "v" * 10_000 for i in range(200)} | {"Authorization": "Bearer secret"}
    record = dead_letter_record(
        "gateway",
        "pixsim.generations." + "g" * 2000 + ".requested",
        "S",
        7,
        1,
        "reason " * 10_000,
        headers,
        body,
    )
    assert len(record) <= DLQ_MAX_MESSAGE_BYTES
    letter = json.loads(record)
    assert letter["body_bytes"] == size and letter["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert letter["body_truncated"] == (size > 4096)
    assert body.decode(errors="replace").startswith(letter["body"].rstrip("\ufffd"))
    assert "Authorization" not in letter["headers"] and len(letter["headers"]) <= 32


class FakeMsg:
    """Enough of a FastStream NatsMessage for the consumer wrapper: records how it was settled."""

    def __init__(self, body: bytes, subject: str, delivered: int) -> None:
        self.body = body
        self.raw_message = SimpleNamespace(
            subject=subject,
            headers={"Nats-Msg-Id": "x"},
            metadata=SimpleNamespace(
                num_delivered=delivered,
                stream=subjects.GENERATIONS_STREAM,
                sequence=SimpleNamespace(stream=42),
            ),
        )
        self.settled: list[tuple[str, Any]] = []

    async def ack(self) -> None:
        self.settled.append(("ack", None))

    async def nack(self, delay: float | None = None) -> None:
        self.settled.append(("nack", delay))

    async def reject(self) -> None:
        self.settled.append(("term", None))


class FakeBroker:
    """Registers the wrapped handler instead of subscribing; `publish` fails when told to."""

    def __init__(self, fail: bool) -> None:
        self.fail, self.published, self.consume = fail, [], None

    def subscriber(self, *args: Any, **kwargs: Any):
        self.options = kwargs

        def register(func: Any) -> Any:
            self.consume = func
            return func

        return register

    async def publish(self, body: bytes, subject: str, **kwargs: Any) -> None:
        if self.fail:
            raise TimeoutError("nats: timeout")
        self.published.append((subject, json.loads(body)))


def _wrapped(fail: bool, handler: Any = None, retry: RetryPolicy | None = None) -> FakeBroker:
    broker = FakeBroker(fail)

    async def ok(event: Any, msg: Any) -> None:
        return None

    subscribe(
        broker,
        service="dispatcher",
        subject=subjects.generation_events("requested"),  # type: ignore[arg-type]
        stream=subjects.GENERATIONS_STREAM,
        durable="dispatcher",
        event_type=GenerationRequested,
        handler=handler or ok,
        retry=retry or RetryPolicy(max_attempts=3, first_delay=0.1),
    )
    return broker


async def test_a_dead_letter_that_cannot_be_written_is_retried_then_terminated(caplog) -> None:
    broker = _wrapped(fail=True)
    assert broker.options["config"].max_deliver == 3 + consumers.BACKSTOP_MARGIN
    subject = subjects.generation("g1", "requested")
    for delivered, expected in ((1, "nack"), (2, "nack"), (3, "term")):
        msg = FakeMsg(b"[1, 2, 3]", subject, delivered)
        with caplog.at_level(logging.WARNING):
            await broker.consume(msg)
        assert [kind for kind, _ in msg.settled] == [expected]
    assert "terminating it" in caplog.text and "invalid event" in caplog.text


async def test_an_invalid_message_is_dead_lettered_once_and_acked() -> None:
    broker = _wrapped(fail=False)
    msg = FakeMsg(b'{"type": "generation.requested"}', subjects.generation("g1", "requested"), 1)
    await broker.consume(msg)
    assert msg.settled == [("ack", None)]
    ((subject, letter),) = broker.published
    assert subject == subjects.dlq("dispatcher") and letter["reason"].startswith("invalid event:")


async def test_a_message_redelivered_past_the_limit_is_dead_lettered_without_running_the_handler() -> None:
    calls = []

    async def hangs(event: Any, msg: Any) -> None:  # stands for a handler whose ack never arrived
        calls.append(event)

    broker = _wrapped(fail=False, handler=hangs)
    event = GenerationRequested(generation_id="g1", provider_id="sim", operation_type="text_to_video")
    msg = FakeMsg(event.model_dump_json().encode(), event.subject, 4)  # max_attempts 3: one too many
    await broker.consume(msg)
    assert not calls and msg.settled == [("ack", None)]
    assert broker.published[0][1]["reason"] == "delivered 4 times without finishing"


async def test_poll_again_is_bounded_by_max_deliveries() -> None:
    async def later(event: Any, msg: Any) -> None:
        raise consumers.PollAgain(0.5)

    broker = _wrapped(fail=False, handler=later, retry=RetryPolicy(max_attempts=3, max_deliveries=50))
    event = GenerationRequested(generation_id="g1", provider_id="sim", operation_type="text_to_video")
    for delivered, expected in ((3, "nack"), (49, "nack"), (50, "ack")):
        msg = FakeMsg(event.model_dump_json().encode(), event.subject, delivered)
        await broker.consume(msg)
        assert msg.settled[0][0] == expected
    assert broker.published[-1][1]["reason"] == "still not finished after 50 deliveries"
    assert broker.options["config"].max_deliver == 50 + consumers.BACKSTOP_MARGIN


def test_a_dead_letter_of_control_bytes_still_fits_and_keeps_size_and_hash() -> None:
    body = b"\x01" * (1024 * 1024)
    headers = {f"K{i}": "\x02" * 512 for i in range(32)}
    record = dead_letter_record(
        "billing", "pixsim.credits.sim.charged", "S", 1, 1, "\x03" * 5000, headers, body
    )
    assert len(record) <= DLQ_MAX_MESSAGE_BYTES
    letter = json.loads(record)
    assert letter["body_bytes"] == len(body) and letter["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert letter["body_truncated"] is True
