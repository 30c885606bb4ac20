"""The webhook sender's subscription cache: a generation's events cost no lookup where the answer is known,
a subscription made through another replica is found, and a deleted one stops being used within the
cache time in every replica (at once in the process that forgets it)."""

from __future__ import annotations

import asyncio
import uuid

from pixsim_gateway.webhooks import SUBSCRIPTIONS, Subscriptions
from pymongo import AsyncMongoClient
from support import Commands

SUB = {"user_id": "alice", "url": "https://hooks.example/pixsim", "events": ["completed", "start"]}


async def test_replicas_share_subscriptions_through_the_store_and_ask_only_when_they_must(servers):
    finds = Commands()
    client = AsyncMongoClient(servers.mongo_url, tz_aware=True, event_listeners=[finds])
    db = client[f"subscriptions_{uuid.uuid4().hex[:8]}"]
    here, there = Subscriptions(db, ttl_s=0.3), Subscriptions(db, ttl_s=0.3)  # two gateway replicas
    lookup = f"find {SUBSCRIPTIONS}"
    try:
        plain, hooked = uuid.uuid4().hex, uuid.uuid4().hex
        await here.create(plain, None)
        await here.create(hooked, dict(SUB))

        # The replica that created them knows, without a lookup, for every event of the generation.
        for _ in range(3):
            assert await here.get(plain) is None
            assert (await here.get(hooked))["url"] == SUB["url"]
        assert finds.count[lookup] == 0

        # Another replica reads each once; "none" stays known for good.
        assert await there.get(plain) is None
        assert (await there.get(hooked))["url"] == SUB["url"]
        assert finds.count[lookup] == 2
        await asyncio.sleep(0.4)
        assert await there.get(plain) is None
        assert finds.count[lookup] == 2

        # A deleted subscription: within the cache time everywhere, at once where it is forgotten.
        await db[SUBSCRIPTIONS].delete_one({"_id": hooked})
        here.forget(hooked)
        assert await here.get(hooked) is None
        await asyncio.sleep(0.4)
        assert await there.get(hooked) is None
    finally:
        await client.close()


async def test_without_a_cache_time_a_found_subscription_is_read_for_every_event(servers):
    finds = Commands()
    client = AsyncMongoClient(servers.mongo_url, tz_aware=True, event_listeners=[finds])
    db = client[f"subscriptions_{uuid.uuid4().hex[:8]}"]
    subscriptions = Subscriptions(db, ttl_s=0)
    try:
        gid = uuid.uuid4().hex
        await subscriptions.create(gid, dict(SUB))
        for _ in range(2):
            assert await subscriptions.get(gid) is not None
        assert finds.count[f"find {SUBSCRIPTIONS}"] == 2
    finally:
        await client.close()
