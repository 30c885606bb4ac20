"""Idempotency-Key over HTTP, and exactly-once booking of redelivered credit events."""

from __future__ import annotations

import json

import nats
import pytest
from pixsim_contracts import subjects
from support import mongo_db, wait_consumer_idle, wait_for, wait_ledger

pytestmark = pytest.mark.system


async def test_same_idempotency_key_gives_one_generation(pipeline):
    body = {
        "provider_id": "sim",
        "operation_type": "text_to_video",
        "params": {"prompt": "idem fox", "duration": 1},
    }
    headers = {"Idempotency-Key": "key-idem-1"}
    first = await pipeline.api.post("/api/v1/generations", json=body, headers=headers)
    second = await pipeline.api.post("/api/v1/generations", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    await wait_for(pipeline.api, first.json()["id"])
    submits = [
        r for r in pipeline.fake.requests if r[1] == "/v1/jobs" and (r[3] or {}).get("prompt") == "idem fox"
    ]
    assert len(submits) == 1

    other = await pipeline.api.post(
        "/api/v1/generations", headers=headers, json={**body, "params": {"prompt": "another fox"}}
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"


async def test_redelivering_every_credit_event_leaves_the_ledger_unchanged(pipeline):
    account = (
        await pipeline.api.post(
            "/api/v1/accounts", json={"provider_id": "sim", "raw_data": {"token": "t-redeliver"}}
        )
    ).json()["id"]
    gids = []
    for outcome in ("success", "fail"):
        resp = await pipeline.api.post(
            "/api/v1/generations",
            json={
                "provider_id": "sim",
                "operation_type": "text_to_video",
                "account_id": account,
                "params": {"prompt": f"redeliver {outcome}", "duration": 2, "outcome": outcome},
            },
        )
        gids.append(resp.json()["id"])
    for gid, kinds in zip(gids, ({"reserved", "charged"}, {"reserved", "released"}), strict=True):
        await wait_for(pipeline.api, gid)
        await wait_ledger(pipeline.servers.mongo_url, pipeline.db_name, gid, kinds)
    db = mongo_db(pipeline.servers.mongo_url, pipeline.db_name)
    balance_before = await db["balances"].find_one({"_id": f"{account}:sim"})
    ledger_before = await db["ledger"].count_documents({"account_id": account})

    # Publish every credit event of this account again, with fresh Nats-Msg-Ids so JetStream
    # cannot drop them: billing itself must recognise them.
    nc = await nats.connect(pipeline.servers.nats_url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(subjects.CREDITS_STREAM)).state.last_seq
        sub = await js.subscribe(subjects.CREDIT_SUBJECTS, ordered_consumer=True)
        originals = []
        while True:  # read up to the stream's end as it was, then replay (never our own replays)
            msg = await sub.next_msg(timeout=5)
            if json.loads(msg.data).get("account_id") == account:
                originals.append(msg)
            if msg.metadata.sequence.stream >= last:
                break
        await sub.unsubscribe()
        for msg in originals:
            await js.publish(
                msg.subject, msg.data, headers={"Nats-Msg-Id": f"replay-{msg.metadata.sequence.stream}"}
            )
        replayed = len(originals)
    finally:
        await nc.close()
    assert replayed == 4
    await wait_consumer_idle(pipeline.servers.nats_url, subjects.CREDITS_STREAM, "billing")

    balance_after = await db["balances"].find_one({"_id": f"{account}:sim"})
    assert (balance_after["reserved"], balance_after["spent"]) == (
        balance_before["reserved"],
        balance_before["spent"],
    )
    assert (balance_after["reserved"], balance_after["spent"]) == (0, 2)
    assert await db["ledger"].count_documents({"account_id": account}) == ledger_before == 4
    entries = await db["ledger"].find({"account_id": account}).to_list()
    assert sum(e["delta_spent"] for e in entries) == balance_after["spent"]
    assert sum(e["delta_reserved"] for e in entries) == balance_after["reserved"]
