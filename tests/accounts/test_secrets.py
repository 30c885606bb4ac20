"""A secret given to POST /accounts appears nowhere: no log line, event, span, API response or stored field."""

from __future__ import annotations

import json
import logging
import uuid

import httpx
import pytest
from accounts.kit import PROVIDER, running, stream_messages
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pixsim_contracts import subjects
from support import wait_for

pytestmark = pytest.mark.system


def _span_text(span) -> str:
    parts = [span.name, json.dumps(dict(span.attributes or {}), default=str), str(span.status.description)]
    parts += [f"{e.name} {json.dumps(dict(e.attributes or {}), default=str)}" for e in span.events]
    return "\n".join(parts)


async def test_a_secret_sentinel_is_found_nowhere_after_a_full_lifecycle(fresh_servers, acct_fake, caplog):
    secret, renewed = f"sentinel-{uuid.uuid4().hex}", f"sentinel-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    responses: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        responses.append(f"{response.status_code} {response.headers} {response.text}")

    async with running(fresh_servers, acct_fake, tracer_provider=tracer_provider) as system:
        system.api.event_hooks["response"].append(keep)
        raw = {"token": secret, "cookies": [{"name": "sim_token", "value": secret}], "email": "s@example.com"}
        resp = await system.api.post(
            "/api/v1/accounts", json={"provider_id": PROVIDER, "raw_data": raw, "credits": {"sim": 50}}
        )
        account = resp.json()["id"]
        bad = await system.api.post(
            "/api/v1/accounts", json={"provider_id": PROVIDER, "raw_data": {"cookies": {"other": secret}}}
        )
        assert bad.status_code == 422
        await system.api.get("/api/v1/accounts")
        done = await wait_for(system.api, await system.generate(prompt="with a secret"))
        assert done["status"] == "completed" and done["account_id"] == account
        await system.api.patch(f"/api/v1/accounts/{account}", json={"priority": 3})
        acct_fake.balances[secret] = {"sim": 20}
        assert (await system.api.post(f"/api/v1/accounts/{account}/sync")).status_code == 202
        await system.wait_account(account, lambda v: v["balances"]["sim"]["balance"] == 20)

        acct_fake.accept_then_401[secret] = 0  # the provider now rejects it, echoing it back
        failed = await wait_for(system.api, await system.generate(prompt="rejected"))
        assert failed["status"] == "failed" and failed["error"]["code"] == "no_account_available"
        pinned = await wait_for(system.api, await system.generate(prompt="pinned", account_id=account))
        assert pinned["error"]["code"] == "pinned_account_unavailable"
        assert (await system.get(account))["status"] == "auth_failed"
        await system.api.patch(f"/api/v1/accounts/{account}", json={"raw_data": {"token": renewed}})
        assert (await system.get(account))["status"] == "active"
        again = await wait_for(system.api, await system.generate(prompt="renewed"))
        assert again["status"] == "completed"
        await system.api.get(f"/api/v1/accounts/{account}/ledger")
        await system.api.get(f"/api/v1/generations/{failed['id']}")

        stored = []
        for name in await system.db.list_collection_names():
            stored += [json.dumps(d, default=str) for d in await system.db[name].find({}).to_list()]
        events = []
        for stream in subjects.STREAM_SUBJECTS:
            events += [
                f"{s} {h} {d.decode(errors='replace')}"
                for s, h, d in await stream_messages(system.nats_url, stream)
            ]

    # The secrets did reach the provider (so the search below is a real one) ...
    sent = [r.headers.get("authorization", "") for r in acct_fake.requests]
    assert any(secret in h for h in sent) and any(renewed in h for h in sent)
    # ... and nowhere else.
    logs = [f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    spans_text = [_span_text(s) for s in spans.get_finished_spans()]
    for where, texts in {
        "log lines": logs,
        "events": events,
        "spans": spans_text,
        "API responses": responses,
        "stored documents": stored,
    }.items():
        assert texts, f"nothing captured from {where}"
        for sentinel in (secret, renewed):
            leaks = [t[:300] for t in texts if sentinel in t]
            assert not leaks, f"a secret leaked into {where}: {leaks}"
    assert any("provider_auth" in e for e in events)  # the rejection itself was told, without the secret
