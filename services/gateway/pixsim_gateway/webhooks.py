"""Webhooks: a generation created with `webhook_url` gets its events POSTed there, signed per the
Standard Webhooks specification (`webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256
with the user's secret, through the spec's own `standardwebhooks` library).

Deliveries come from the durable consumer `gateway-webhooks` on every generation event. Each delivery
is recorded in `webhook_deliveries` (keyed by its `webhook-id`, which is derived from the event id, so a
retry carries the same id and a receiver can drop duplicates). A receiver that fails (non-2xx, timeout,
refused connection) is retried with backoff for `PIXSIM_WEBHOOK_RETRY_FOR` seconds (default 24 h). The
URL follows the safe-fetch rules of sources: http(s) only, never an internal address (checked when the
generation is created and again before every attempt, connecting to the address that was checked).

Whether a generation has a subscription is cached in the process (`Subscriptions`), so its events
usually cost no lookup: see there for how soon a change takes effect.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import httpx
from pixsim_contracts import TERMINAL_GENERATION_EVENTS
from pixsim_provider_sdk import SourceRejected
from pixsim_provider_sdk.safe_fetch import FetchPolicy, check_url, checked_address, default_tls
from pixsim_runtime.backoff import backoff
from pixsim_runtime.consumers import PollAgain
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from standardwebhooks import Webhook

log = logging.getLogger(__name__)

SUBSCRIPTIONS = "webhook_subscriptions"  # {_id: generation_id, user_id, url, events}; see Subscriptions
DELIVERIES = "webhook_deliveries"
SECRETS = "webhook_secrets"  # {_id: user_id, secret: <encrypted>}
#: Filter names -> the generation event kinds they select (like Replicate's `webhook_events_filter`).
EVENTS = {
    "start": "submitted",
    "progress": "progressed",
    "completed": "completed",
    "failed": "failed",
    "filtered": "filtered",
    "cancelled": "cancelled",
}
DEFAULT_EVENTS = ["start", *TERMINAL_GENERATION_EVENTS]
TIMEOUT_S = 10.0


async def check_webhook_url(url: str) -> str:
    """The URL if a delivery may go there; else `SourceRejected` with the reason."""
    checked = check_url(url, "webhook_url")
    await checked_address(checked, "webhook_url", FetchPolicy.from_env())
    return str(checked)


class Secrets:
    """One signing secret per user (`whsec_` + base64 of 32 random bytes), encrypted at rest."""

    def __init__(self, db: AsyncDatabase, cipher: Any) -> None:
        self.secrets = db[SECRETS]
        self.cipher = cipher

    async def get(self, user_id: str, *, rotate: bool = False) -> str:
        doc = None if rotate else await self.secrets.find_one({"_id": user_id})
        if doc is not None:
            return self.cipher.decrypt(doc["secret"])["secret"]
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        encrypted = {"secret": self.cipher.encrypt({"secret": secret}), "created_at": datetime.now(UTC)}
        if rotate:
            await self.secrets.replace_one({"_id": user_id}, encrypted, upsert=True)
            return secret
        try:
            await self.secrets.insert_one({"_id": user_id, **encrypted})
        except DuplicateKeyError:  # a concurrent first call won: use its secret
            return await self.get(user_id)
        return secret


class Subscriptions:
    """Which generations have a webhook subscription, cached so a generation's events cost no lookup.

    A subscription belongs to one generation and is written by `POST /generations` *before* the
    generation's `requested` event is published. Hence:
    - the process that created the generation knows the answer without asking (`created`);
    - elsewhere (another gateway replica made it, or an upstream published it on NATS) the first event
      the sender looks at reads it once. "None" is then final: every event the sender looks at
      (`submitted` and later) comes after the `requested` event, so after any subscription it could have;
    - a subscription found is trusted for `ttl_s` seconds (`PIXSIM_WEBHOOK_SUBSCRIPTION_CACHE`, default
      5), then read again: one deleted or changed in the database (no API does that today) stops or
      changes its deliveries within that time in every replica, and at once in a process that calls
      `forget`.
    """

    def __init__(self, db: AsyncDatabase, *, ttl_s: float = 5.0, cache_size: int = 50_000) -> None:
        self.collection = db[SUBSCRIPTIONS]
        self.ttl_s = ttl_s
        self.cache_size = cache_size
        #: generation id -> (its subscription or None, monotonic time after which to read it again)
        self._known: OrderedDict[str, tuple[dict[str, Any] | None, float]] = OrderedDict()

    async def create(self, generation_id: str, sub: dict[str, Any] | None) -> None:
        """Record a new generation's subscription (`sub`), or that it has none (None); before its
        `requested` event is published."""
        if sub is not None:
            sub = {"_id": generation_id, **sub}
            await self.collection.insert_one(sub)
        self._remember(generation_id, sub)

    async def get(self, generation_id: str) -> dict[str, Any] | None:
        """The generation's subscription, if it has one; call only for events after its `requested`."""
        known = self._known.get(generation_id)
        if known is not None and (known[0] is None or time.monotonic() < known[1]):
            return known[0]
        sub = await self.collection.find_one({"_id": generation_id})
        self._remember(generation_id, sub)
        return sub

    def forget(self, generation_id: str) -> None:
        """The subscription changed: read it again next time."""
        self._known.pop(generation_id, None)

    def _remember(self, generation_id: str, sub: dict[str, Any] | None) -> None:
        if sub is not None and self.ttl_s <= 0:
            self._known.pop(generation_id, None)
            return
        self._known[generation_id] = (sub, time.monotonic() + self.ttl_s)
        self._known.move_to_end(generation_id)
        while len(self._known) > self.cache_size:
            self._known.popitem(last=False)


class Sender:
    def __init__(
        self,
        db: AsyncDatabase,
        secrets_: Secrets,
        subscriptions: Subscriptions,
        *,
        retry_s: float,
        retry_max_s: float,
        retry_for_s: float,
    ) -> None:
        self.subscriptions = subscriptions
        self.deliveries = db[DELIVERIES]
        self.secrets = secrets_
        self.retry_s, self.retry_max_s, self.retry_for_s = retry_s, retry_max_s, retry_for_s

    async def on_event(self, event: Any, _msg: Any) -> None:
        kind = event.type.removeprefix("generation.")
        if kind not in EVENTS.values():
            return
        sub = await self.subscriptions.get(event.generation_id)
        if sub is None or not any(EVENTS[name] == kind for name in sub["events"]):
            return
        delay = await self.deliver(event, sub)
        if delay is not None:
            raise PollAgain(delay)

    async def deliver(self, event: Any, sub: dict[str, Any]) -> float | None:
        """One attempt (unless delivered or given up before); None when done, else seconds to the next."""
        webhook_id = f"msg_{event.event_id}"
        now = datetime.now(UTC)
        record = {
            "_id": webhook_id,
            "generation_id": event.generation_id,
            "user_id": sub["user_id"],
            "url": sub["url"],
            "event_type": event.type,
            "status": "pending",
            "attempts": [],
            "created_at": now,
        }
        try:  # the first attempt: recorded without a read
            await self.deliveries.insert_one(record)
        except DuplicateKeyError:  # a retry or a redelivery: what the earlier attempts recorded
            record = await self.deliveries.find_one({"_id": webhook_id}) or record
        if record["status"] != "pending":
            return None
        payload = json.dumps(
            {"type": event.type, "timestamp": now.isoformat(), "data": json.loads(event.model_dump_json())},
            separators=(",", ":"),
        )
        secret = await self.secrets.get(sub["user_id"])
        status_code, error = await self._post(sub["url"], webhook_id, payload, secret, now)
        attempt = {"at": now, "status_code": status_code, "error": error}
        delivered = status_code is not None and 200 <= status_code < 300
        created = (
            record["created_at"] if record["created_at"].tzinfo else record["created_at"].replace(tzinfo=UTC)
        )
        gave_up = not delivered and (now - created).total_seconds() >= self.retry_for_s
        status = "delivered" if delivered else "failed" if gave_up else "pending"
        # A whole-document write: nx-27017 stores a datetime (or document) given to $set/$push as a string.
        await self.deliveries.replace_one(
            {"_id": webhook_id},
            {**record, "attempts": [*record["attempts"], attempt], "status": status, "updated_at": now},
        )
        if status != "pending":
            return None
        return backoff(len(record["attempts"]), self.retry_s, self.retry_max_s)

    async def _post(
        self, url: str, webhook_id: str, payload: str, secret: str, now: datetime
    ) -> tuple[int | None, str | None]:
        try:
            checked = check_url(url, "webhook_url")
            address = await checked_address(checked, "webhook_url", FetchPolicy.from_env())
        except SourceRejected as exc:
            return None, str(exc)
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(webhook_id, now, payload),
            "content-type": "application/json",
            "user-agent": "PixSim-Webhooks/1.0",
            "Host": checked.netloc.decode("ascii"),
        }
        # Connect to the address that was checked (no second DNS answer), the name kept in Host and TLS.
        async with httpx.AsyncClient(
            trust_env=False, follow_redirects=False, timeout=TIMEOUT_S, verify=default_tls()
        ) as client:
            try:
                response = await client.post(
                    checked.copy_with(host=address),
                    content=payload.encode(),
                    headers=headers,
                    extensions={"sni_hostname": checked.raw_host.decode("ascii")}
                    if checked.scheme == "https"
                    else None,
                )
            except httpx.HTTPError as exc:
                return None, f"{type(exc).__name__}: {str(exc)[:200]}"
        return response.status_code, None if response.is_success else response.text[:200]


def delivery_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "generation_id": doc["generation_id"],
        "url": doc["url"],
        "event_type": doc["event_type"],
        "status": doc["status"],
        "created_at": doc["created_at"].isoformat(),
        "attempts": [
            {"at": a["at"].isoformat(), "status_code": a["status_code"], "error": a["error"]}
            for a in doc["attempts"]
        ],
    }
