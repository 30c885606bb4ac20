"""`pixsim_client` against the real in-process pipeline (gateway, dispatcher, poller, billing, the sim fake).

Only the retry test answers from an `httpx.MockTransport`: it needs 429s and 503s on demand."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pixsim_client import (
    AsyncPixSim,
    AuthenticationError,
    GenerationError,
    NotFoundError,
    PixSim,
    RateLimitError,
    UnprocessableEntityError,
)
from support import ADMIN_KEY, create, sse_events

pytestmark = pytest.mark.system


def client(pipeline, **kwargs) -> AsyncPixSim:
    return AsyncPixSim(ADMIN_KEY, base_url=pipeline.gateway_url, **kwargs)


async def test_run_returns_the_completed_generation(pipeline):
    async with client(pipeline) as pixsim:
        gen = await pixsim.run("sim", "text_to_video", {"prompt": "a fox", "duration": 1})
    assert gen.status == "completed" and gen.result["video_url"] and gen.progress == 1.0
    assert gen.credits["charged"] == {"sim": 1}


async def test_the_sync_client_runs_too_and_reads_the_key_from_the_environment(pipeline, monkeypatch):
    monkeypatch.setenv("PIXSIM_API_KEY", ADMIN_KEY)

    def run():
        with PixSim(base_url=pipeline.gateway_url) as pixsim:
            gen = pixsim.run("sim", "text_to_image", {"prompt": "a fox"})
            return gen, pixsim.generations.get(gen.id), pixsim.generations.list(limit=1)

    gen, again, page = await asyncio.to_thread(run)
    assert gen.status == "completed" and gen.result["image_url"]
    assert again == gen and page.items[0].id == gen.id


async def test_a_failed_generation_raises_with_its_error_code(pipeline):
    async with client(pipeline) as pixsim:
        with pytest.raises(GenerationError) as caught:
            await pixsim.run("sim", "text_to_video", {"prompt": "a storm", "duration": 1, "outcome": "fail"})
    assert caught.value.status == "failed" and caught.value.code and caught.value.generation.error


async def test_api_errors_are_typed_and_carry_the_code(pipeline):
    async with client(pipeline) as pixsim:
        with pytest.raises(NotFoundError) as missing:
            await pixsim.generations.get("nope")
        assert missing.value.code == "generation_not_found" and missing.value.status_code == 404
        with pytest.raises(UnprocessableEntityError) as invalid:
            await pixsim.generations.create("sim", "text_to_video", {"duration": "long"})
        assert invalid.value.code == "param_invalid"
    async with AsyncPixSim("psk_wrong", base_url=pipeline.gateway_url) as stranger:
        with pytest.raises(AuthenticationError) as refused:
            await stranger.generations.list()
    assert refused.value.code == "unauthenticated"


async def test_create_sends_an_idempotency_key_and_cancel_works(pipeline):
    async with client(pipeline) as pixsim:
        first = await pixsim.generations.create(
            "sim", "text_to_video", {"prompt": "x", "duration": 5}, idempotency_key="client-test-key"
        )
        again = await pixsim.generations.create(
            "sim", "text_to_video", {"prompt": "x", "duration": 5}, idempotency_key="client-test-key"
        )
        assert again.id == first.id
        cancelled = await pixsim.generations.cancel(first.id)
        assert cancelled.id == first.id
        assert (await pixsim.generations.wait(first.id)).status in ("cancelled", "completed")


class CutStream(httpx.AsyncByteStream):
    """The gateway's SSE bytes, cut off with a read error after `frames` events."""

    def __init__(self, inner: httpx.AsyncByteStream, frames: int) -> None:
        self.inner, self.frames = inner, frames

    async def __aiter__(self):
        buffer, seen = b"", 0
        async for chunk in self.inner:
            buffer += chunk
            while (end := buffer.find(b"\n\n")) >= 0:
                frame, buffer = buffer[: end + 2], buffer[end + 2 :]
                yield frame
                seen += not frame.startswith(b":")
                if seen == self.frames:
                    raise httpx.ReadError("connection reset (test)")

    async def aclose(self) -> None:
        await self.inner.aclose()


class FlakyNetwork(httpx.AsyncBaseTransport):
    """A real connection whose first event stream breaks after two events; records `Last-Event-ID`s."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.cuts = 1
        self.last_event_ids: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/events"):
            self.last_event_ids.append(request.headers.get("last-event-id"))
            if self.cuts:
                self.cuts -= 1
                return httpx.Response(
                    response.status_code,
                    headers=response.headers,
                    stream=CutStream(response.stream, 2),
                    request=request,
                )
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_broken_event_stream_resumes_without_losing_or_repeating_events(pipeline):
    network = FlakyNetwork()
    async with client(pipeline, http_client=httpx.AsyncClient(transport=network)) as pixsim:
        pixsim._sleep = lambda _s: asyncio.sleep(0)
        gen = await pixsim.generations.create("sim", "text_to_video", {"prompt": "a fox", "duration": 2})
        events = [e async for e in pixsim.generations.stream(gen.id)]
    everything = await sse_events(pipeline.gateway_url, gen.id)
    assert [(e.type, e.data["event_id"]) for e in events] == [(k, d["event_id"]) for k, d in everything]
    assert len({e.id for e in events}) == len(events) and events[-1].terminal
    assert network.last_event_ids == [None, events[1].id]  # reconnected once, after the second event


async def test_last_event_id_resumes_after_that_event(pipeline):
    gen = await create(pipeline.api, {"prompt": "a fox", "duration": 1})
    everything = await sse_events(pipeline.gateway_url, gen["id"])
    async with client(pipeline) as pixsim:
        rest = [e async for e in pixsim.stream(gen["id"], last_event_id=everything[0][1]["event_id"])]
        assert [e.data["event_id"] for e in rest] == [d["event_id"] for _, d in everything[1:]]
        ended = [e async for e in pixsim.stream(gen["id"], last_event_id=everything[-1][1]["event_id"])]
        assert ended == []  # nothing after the terminal event


def test_retries_honour_retry_after_then_raise_the_typed_error():
    answers = [
        httpx.Response(
            429,
            headers={"Retry-After": "2"},
            json={"error": {"code": "rate_limited", "message": "slow down"}},
        ),
        httpx.Response(503, text="upstream down"),
        httpx.Response(200, json={"items": [], "next_cursor": None}),
    ]
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    pixsim = PixSim(
        "psk_test",
        base_url="http://pixsim.test",
        max_retries=2,
        http_client=httpx.Client(transport=httpx.MockTransport(answer)),
    )
    slept: list[float] = []
    pixsim._sleep = slept.append
    assert pixsim.generations.list().items == []
    assert slept[0] == 2.0 and 0 < slept[1] <= 8 and len(seen) == 3
    assert all(r.headers["authorization"] == "Bearer psk_test" for r in seen)

    answers[:] = [
        httpx.Response(
            429,
            headers={"Retry-After": "1"},
            json={"error": {"code": "rate_limited", "message": "slow down"}},
        )
    ] * 3
    with pytest.raises(RateLimitError) as caught:
        pixsim.generations.list()
    assert caught.value.code == "rate_limited" and caught.value.message == "slow down"
