"""How long a job should take: the provider's own answer, else what its past jobs took.

The provider's `expected_duration_s(operation_type, params)` hook comes first. When it is silent (None,
or it raised), the estimate is learned per provider, operation and the params that change how long a
job runs (`DURATION_PARAMS`), in the collection `poll_durations`: one document per such key (`_id`),
holding the last `WINDOW` durations of completed jobs. The estimate is their median once `MIN_SAMPLES`
are known. Reads go through a small per-process cache, so a new job usually costs no read; what a job
teaches counts in this process at once and is written behind (`flush`, every moment: one `$push`/`$slice`
per key for all the samples since the last flush, in one round trip). A replica that dies loses the
samples of its last moment: an estimate is statistics, not a record.

What a completed job teaches: seen finished after a poll that found it running, it ended between the
two polls (their midpoint is learned); seen finished at its first poll, it took at most that long, so
`CENSORED_SHRINK` x that is learned. An estimate that is too long thus shrinks until first polls find
jobs still running, and the dense polls around the expected end then measure them.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

from pixsim_contracts import GenerationSubmitted
from pixsim_provider_sdk import Provider
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

log = logging.getLogger(__name__)

DURATIONS = "poll_durations"
#: The canonical params that plausibly change how long a job runs; the rest (prompt, seed...) do not.
DURATION_PARAMS = ("model", "duration", "quality", "resolution")
WINDOW = 20
MIN_SAMPLES = 3
CENSORED_SHRINK = 0.8
CACHE_S = 30.0


def duration_key(job: GenerationSubmitted) -> str:
    """`<provider>:<operation>[:param=value,...]`, e.g. `sim:text_to_video:duration=5,quality=720p`."""
    coarse = ",".join(
        f"{p}={_short(job.params[p])}" for p in DURATION_PARAMS if job.params.get(p) is not None
    )
    return f"{job.provider_id}:{job.operation_type.value}" + (f":{coarse}" if coarse else "")


def _short(value: Any) -> str:
    return str(value)[:40]


def learned(samples: list[float]) -> float | None:
    return statistics.median(samples) if len(samples) >= MIN_SAMPLES else None


def observed(elapsed: float, last_running_at: float | None) -> float:
    """The duration a job seen finished at `elapsed` is learned as (see the module's docstring)."""
    if last_running_at is None:
        return CENSORED_SHRINK * elapsed
    return (last_running_at + elapsed) / 2


class Durations:
    """Expected durations: the hook, else the learned median (None when neither knows)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.coll = db[DURATIONS]
        self._cache: dict[str, tuple[float, list[float]]] = {}  # key -> (good until, recent samples)
        self._unsaved: dict[str, list[float]] = {}

    async def expect(
        self, provider: Provider | None, job: GenerationSubmitted
    ) -> tuple[float | None, str | None]:
        """(seconds, where from: `hook` or `learned`), or (None, None)."""
        if provider is not None:
            try:
                hinted = provider.expected_duration_s(job.operation_type, dict(job.params))
            except Exception as exc:  # noqa: BLE001 - a hook bug costs only a better schedule
                log.error(
                    "provider %s: hook expected_duration_s failed for %s (%s: %s); using past jobs",
                    job.provider_id,
                    job.generation_id,
                    type(exc).__name__,
                    exc,
                )
                hinted = None
            if (
                isinstance(hinted, int | float)
                and not isinstance(hinted, bool)
                and 0 <= hinted < float("inf")
            ):
                return float(hinted), "hook"
        seconds = learned(await self._samples(duration_key(job)))
        return (seconds, "learned") if seconds is not None else (None, None)

    def learn(self, key: str, seconds: float) -> None:
        """Count a completed job's duration: in this process now, in MongoDB at the next `flush`."""
        sample = round(seconds, 3)
        self._unsaved.setdefault(key, []).append(sample)
        cached = self._cache.get(key)
        if cached is not None:
            cached[1][:] = [*cached[1], sample][-WINDOW:]

    async def flush(self) -> None:
        """Write the samples learned since the last flush: one round trip for every key."""
        unsaved, self._unsaved = self._unsaved, {}
        if not unsaved:
            return
        try:
            await self.coll.bulk_write(
                [
                    UpdateOne(
                        {"_id": key},
                        {"$push": {"recent": {"$each": samples, "$slice": -WINDOW}}},
                        upsert=True,
                    )
                    for key, samples in unsaved.items()
                ],
                ordered=False,
            )
        except Exception:
            for key, samples in unsaved.items():  # kept for the next flush, newest last
                self._unsaved[key] = [*samples, *self._unsaved.get(key, [])][-WINDOW:]
            raise

    async def _samples(self, key: str) -> list[float]:
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        doc = await self.coll.find_one({"_id": key}, {"recent": 1})
        samples = [*list((doc or {}).get("recent") or []), *self._unsaved.get(key, [])][-WINDOW:]
        self._cache[key] = (time.monotonic() + CACHE_S, samples)
        return samples
