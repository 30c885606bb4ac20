"""One trace follows a job from the HTTP call through every service and provider call to billing."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import SpanKind
from support import create, wait_for, wait_ledger

pytestmark = pytest.mark.system


async def test_one_trace_from_post_to_billing(pipeline):
    pipeline.spans.clear()
    created = await create(pipeline.api, {"prompt": "traced fox", "duration": 1})
    await wait_for(pipeline.api, created["id"])
    await wait_ledger(pipeline.servers.mongo_url, pipeline.db_name, created["id"], {"reserved", "charged"})
    await asyncio.sleep(0.2)  # let the last consumer spans end after their acks
    pipeline.tracer_provider.force_flush()
    spans = pipeline.spans.get_finished_spans()

    roots = [s for s in spans if s.kind is SpanKind.SERVER and s.name.startswith("POST /api/v1/generations")]
    assert roots, [s.name for s in spans]
    trace_id = roots[-1].context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    names = [s.name for s in in_trace]
    gid = created["id"]

    def consumed(event: str) -> bool:
        return any(s.kind is SpanKind.CONSUMER and f".{event}" in s.name for s in in_trace)

    assert any(s.kind is SpanKind.PRODUCER and f"{gid}.requested" in s.name for s in in_trace), names
    assert consumed("requested"), names  # the dispatcher (and the projector)
    assert any(s.kind is SpanKind.CLIENT and s.name.startswith("POST") and
               "/v1/jobs" in str(s.attributes.get("url.full", s.attributes.get("http.url", ""))) for s in in_trace), names
    assert consumed("submitted"), names  # the poller
    assert any(s.kind is SpanKind.CLIENT and s.name.startswith("GET") for s in in_trace), names  # check_status
    assert any(s.kind is SpanKind.CONSUMER and "pixsim.credits.sim.charged" in s.name for s in in_trace), names
