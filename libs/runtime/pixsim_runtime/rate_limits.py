"""Rate limits shared by every replica: GCRA in MongoDB, and the provider calls it paces.

GCRA is the token bucket written as one number per key: the "theoretical arrival time" `tat` (epoch
seconds) in the `rate_limits` collection. A call is admitted by ONE conditional update (`tat <= now`
-> `tat = now + T`, else `tat <= now + burst*T - T` -> `tat += T`), so replicas share the bucket without
locks and an admitted call costs one round trip. The gateway limits its callers with it; `pace_provider`
limits PixSim's own calls to each provider (`ProviderPacer`: its manifest's `rate_limits`, overridden by
`PIXSIM_<ID>_RATE_LIMITS`), so a fleet of dispatchers and pollers never hammers a provider's API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time

from pixsim_contracts import CallRates
from pixsim_provider_sdk import Provider, Registry
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

log = logging.getLogger(__name__)

RATE_LIMITS = "rate_limits"


class Gcra:
    def __init__(self, db: AsyncDatabase) -> None:
        self.buckets = db[RATE_LIMITS]

    async def take(self, key: str, rate: float, burst: int = 1) -> float | None:
        """None if a call under `key` is admitted now; otherwise the seconds until one would be."""
        if rate <= 0:
            return None
        period = 1.0 / rate
        tolerance = max(burst, 1) * period
        for _ in range(3):
            now = time.time()
            if (
                await self.buckets.update_one(
                    {"_id": key, "tat": {"$lte": now}}, {"$set": {"tat": now + period}}
                )
            ).matched_count:
                return None
            if (
                await self.buckets.update_one(
                    {"_id": key, "tat": {"$lte": now + tolerance - period}}, {"$inc": {"tat": period}}
                )
            ).matched_count:
                return None
            doc = await self.buckets.find_one({"_id": key})
            if doc is None:
                try:
                    await self.buckets.insert_one({"_id": key, "tat": now + period})
                    return None
                except DuplicateKeyError:
                    continue  # another replica created it: decide again
            wait = doc["tat"] - (now + tolerance - period)
            if wait > 0:
                return wait
        return None  # the bucket moved under us three times: admit rather than refuse wrongly

    async def wait_turn(self, key: str, rate: float, burst: int = 1) -> float:
        """Sleep until a call under `key` is admitted; returns the seconds waited."""
        waited = 0.0
        while (wait := await self.take(key, rate, burst)) is not None:
            wait += random.uniform(0, 0.2 / rate)  # waiters that woke together do not all retry at once
            await asyncio.sleep(wait)
            waited += wait
        return waited


def call_rates(provider: Provider, environ: dict[str, str] | None = None) -> CallRates:
    """The manifest's `rate_limits`, with the fields of `PIXSIM_<ID>_RATE_LIMITS` (a JSON object) over them."""
    environ = os.environ if environ is None else environ
    name = f"PIXSIM_{provider.provider_id.upper().replace('-', '_')}_RATE_LIMITS"
    rates = provider.manifest.rate_limits
    if raw := environ.get(name):
        try:
            override = json.loads(raw)
            rates = CallRates.model_validate({**rates.model_dump(), **override})
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{name} must be a JSON object of {sorted(CallRates.model_fields)}: {exc}"
            ) from exc
    return rates


class ProviderPacer:
    """Makes PixSim's calls to each provider wait for their turn: `await pacer.turn(provider_id, "submit" or
    "status", account_id)` right before `execute` (submit) or `check_status` / `find_job` (status). One per
    service; the rates are read when it is built (manifest, then `PIXSIM_<ID>_RATE_LIMITS`)."""

    def __init__(self, db: AsyncDatabase, registry: Registry) -> None:
        self.gcra = Gcra(db)
        self.rates = {item.manifest.id: call_rates(item.provider) for item in registry}

    async def turn(self, provider_id: str, kind: str, account_id: str | None = None) -> float:
        """Wait until this call may go; returns the seconds waited (0 without limits)."""
        rates = self.rates.get(provider_id)
        if rates is None:
            return 0.0
        per_provider = rates.submit_per_s if kind == "submit" else rates.status_per_s
        per_account = rates.account_submit_per_s if kind == "submit" else rates.account_status_per_s
        waited = 0.0
        if account_id is not None and per_account > 0:
            waited += await self.gcra.wait_turn(
                f"account:{provider_id}:{account_id}:{kind}", per_account, rates.burst
            )
        if per_provider > 0:  # the provider-wide turn comes last, right before the call, so it holds strictly
            waited += await self.gcra.wait_turn(f"provider:{provider_id}:{kind}", per_provider, rates.burst)
        if waited > 1:
            log.debug("%s %s call waited %.1f s for its rate limit", provider_id, kind, waited)
        return waited
