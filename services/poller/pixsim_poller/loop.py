"""The claim loop each poller replica runs: due jobs are leased from MongoDB one at a time, round-robin
over the providers, and polled with at most `concurrency` polls in flight.

- Fair: each claim goes to the next provider in turn that has a job due, so one provider's backlog
  never delays another's due polls; within a provider the earliest due job goes first.
- End polls first: due jobs past their expected end (`ends_from`) are claimed before jobs due only
  for a progress poll, over every provider, so when polls are due faster than a replica can make them,
  progress events come later and finished jobs are still found on time. End polls go in the order
  they became end polls (`ends_from`), progress polls in the order they fell due (`next_poll_at`).
- Progress polls are budgeted: at most `progress_rate` per second per replica (a local token bucket),
  so a fleet of long jobs costs about one call per job plus the budget, not one every
  `progress_interval` each; a few jobs still get every progress poll they are due.
- Shared: every replica claims from the same collection; a claim is atomic, so a job is polled by one
  replica at a time. While a poll runs its lease is renewed every `keep_alive_s`; a replica that dies
  leaves its leases to run out, and the jobs are due again for any replica.
- A poll never outlives its lease: unless a renewal is confirmed, the poll is stopped (its provider call
  cancelled) a margin before the lease runs out, when another replica may take the job. A slow MongoDB
  or a stalled process otherwise lets two replicas poll one job at the same moment.
- Cheap when idle: a provider with nothing due is asked again only when its earliest job falls due
  (one look-ahead query), or after `IDLE_S`, or when this replica scheduled something sooner.
- Cheap when busy: a provider whose due jobs were all claimed rests for a gap in proportion to what the
  claim cost (`_gap`), so jobs falling due one by one are claimed a few at a time, not one query each.
- A slot is taken before a claim, so a lease is never held while waiting for a free slot.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pixsim_runtime.backoff import backoff
from pixsim_runtime.outages import is_outage

from .store import Partition, PollStore, partitions

log = logging.getLogger(__name__)

#: The longest an idle replica waits before asking again (for jobs other replicas scheduled).
IDLE_S = 1.0
#: After a failed claim (MongoDB away): wait this long, doubling, up to `IDLE_S` x 5.
ERROR_PAUSE_S = 0.2
#: Due jobs claimed together from one provider (two round trips however many: `PollStore.claim_some`);
#: end-poll claims grow from this while they come back full (`_pace_ends`).
CLAIM_BATCH = 16

#: How long the partition of unknown providers rests after a claim found none of theirs due.
OTHERS_IDLE_S = 5.0
#: The gap between two claims of a partition that had no more jobs due (see `_gap`): at least this, ...
CLAIM_GAP_MIN_S = 0.05
#: ... this many times what the last claim took, ...
CLAIM_COST_FACTOR = 4.0
#: ... and at most this.
CLAIM_GAP_MAX_S = 0.5


def _gap(claim_s: float) -> float:
    """How long a partition that had no more due jobs rests before it is asked again. The sorted query
    behind a claim is the schedule's dearest operation and grows with the jobs waiting (tens of ms at
    20,000 on nx-27017): asked again at once for every job that falls due, it would take most of
    MongoDB's time. Resting in proportion to its cost keeps claims to a fifth of it at most, and jobs
    falling due meanwhile are claimed together, at the price of up to this gap of detection lag."""
    return min(max(CLAIM_GAP_MIN_S, CLAIM_COST_FACTOR * claim_s), CLAIM_GAP_MAX_S)


#: A poll is stopped this share of the lease before its lease runs out, unless a renewal is confirmed.
LEASE_MARGIN_SHARE = 0.1

#: Polls one leased job; returns when it is due next (epoch seconds), or None when it left the schedule.
PollFn = Callable[[dict[str, Any]], Awaitable[float | None]]


class Budget:
    """A token bucket in this process: `rate` tokens per second, holding at most `rate` (one second's
    worth) so that an idle spell does not turn into a burst. `rate` <= 0: no limit."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = max(rate, 1.0)
        self.at = time.monotonic()
        #: How many to claim together: a second's worth (at least one).
        self.batch = max(int(rate), 1) if rate > 0 else CLAIM_BATCH

    def available(self) -> int:
        if self.rate <= 0:
            return CLAIM_BATCH
        now = time.monotonic()
        self.tokens = min(self.tokens + (now - self.at) * self.rate, max(self.rate, 1.0))
        self.at = now
        return int(self.tokens)

    def spend(self, n: int) -> None:
        if self.rate > 0:
            self.tokens -= n

    def next_tokens_in(self, n: int) -> float:
        return 0.0 if self.rate <= 0 else max(n - self.tokens, 0.0) / self.rate


class Scheduler:
    def __init__(
        self,
        store: PollStore,
        provider_ids: list[str],
        poll: PollFn,
        *,
        concurrency: int,
        lease_s: float,
        keep_alive_s: float,
        retry_s: float,
        retry_max_s: float,
        progress_rate: float = 0.0,
    ) -> None:
        self.store = store
        self.parts = partitions(provider_ids)
        self._by_provider = {p.name: p for p in self.parts[:-1]}
        self.poll = poll
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.keep_alive_s = keep_alive_s
        self.retry_s = retry_s
        self.retry_max_s = max(retry_max_s, retry_s)
        self._asleep_until: dict[str, float] = {p.name: 0.0 for p in self.parts}
        self._progress = Budget(progress_rate)
        self._budget_wait_until = 0.0  # progress polls may be due but the budget is spent until then
        self._progress_bound = False  # the last progress claim took all the budget allowed
        self._turn = 0
        self._claim_gap = CLAIM_GAP_MIN_S  # see `_gap`
        self._ends_batch = CLAIM_BATCH  # doubles while end-poll claims come back full
        self._claimed: collections.deque[dict[str, Any]] = collections.deque()  # leased, waiting for a slot
        self._wake = asyncio.Event()
        self._running: dict[asyncio.Task[None], dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    # -- what other code tells the loop -----------------------------------------------------------
    def due(self, provider_id: str, at: float) -> None:
        """A job of this provider is due at `at` (this replica just scheduled it)."""
        part = self._by_provider.get(provider_id, self.parts[-1])
        if at < self._asleep_until[part.name]:
            self._asleep_until[part.name] = at
            self._wake.set()

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="poller-scheduler")

    async def stop(self, grace_s: float) -> None:
        """Stop claiming; let running polls finish for up to `grace_s`, then give the rest back due now."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._running:
            await asyncio.wait(list(self._running), timeout=grace_s)
        left = dict(self._running)
        for task in left:
            task.cancel()
        for task, record in left.items():
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await self.store.release(record, time.time())
        while self._claimed:  # claimed, never started: due again at once, for another replica
            with contextlib.suppress(Exception):
                await self.store.release(self._claimed.popleft(), time.time())

    # -- the loop ---------------------------------------------------------------------------------
    async def _run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        pause = ERROR_PAUSE_S
        while True:
            await slots.acquire()
            try:
                record = await self._claim_next()
            except Exception as exc:  # noqa: BLE001 - MongoDB away (or worse): wait, never die
                slots.release()
                log.warning(
                    "poller: claiming failed, retrying in %.1fs: %s: %s", pause, type(exc).__name__, exc
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, IDLE_S * 5)
                continue
            pause = ERROR_PAUSE_S
            if record is None:
                slots.release()
                await self._sleep()
                continue
            task = asyncio.create_task(self._poll_one(record))
            self._running[task] = record
            task.add_done_callback(lambda t: (self._running.pop(t, None), slots.release()))

    async def _claim_next(self) -> dict[str, Any] | None:
        """One due job: the next of those claimed together, else a few from the next provider in turn
        that has due ones (claimed records wait here only until slots free up, well within their lease)."""
        if self._claimed:
            return self._claimed.popleft()
        for ends_only in (True, False):
            limit = self._ends_batch
            if not ends_only:
                # Progress polls are claimed only for slots free now (claimed ahead, they would hold back
                # end polls falling due meanwhile). While the budget binds (the last claim took all it
                # could), a batch at a time: each claim costs the same few queries however many it takes,
                # and this loop makes them one after another; otherwise as soon as one token is there.
                want = min(CLAIM_BATCH, max(self.concurrency - len(self._running), 1))
                if self._progress_bound:
                    want = min(want, self._progress.batch)
                else:
                    want = 1
                limit = min(
                    self._progress.available(), CLAIM_BATCH, max(self.concurrency - len(self._running), 1)
                )
                if limit < want:  # the budget is spent: end polls only, until it holds enough again
                    self._budget_wait_until = time.time() + self._progress.next_tokens_in(want)
                    return None
            n = len(self.parts)
            for i in range(n):
                part = self.parts[(self._turn + i) % n]
                now = time.time()
                if self._asleep_until[part.name] > now:
                    continue
                started = time.monotonic()
                records = await self.store.claim_some(part, now, self.lease_s, limit, ends_only=ends_only)
                self._claim_gap = _gap(time.monotonic() - started)
                if ends_only and records:
                    self._pace_ends(part, now, full=len(records) >= limit)
                if not records and part is self.parts[-1]:
                    # Jobs of providers this replica does not know are rare (and failed at their first
                    # poll): their scan of the whole schedule waits, unless this replica scheduled one.
                    self._asleep_until[part.name] = max(self._asleep_until[part.name], now + OTHERS_IDLE_S)
                if records:
                    self._turn = (self._turn + i + 1) % n
                    if not ends_only:
                        self._progress.spend(sum(1 for r in records if float(r.get("ends_from") or 0) > now))
                        self._progress_bound = len(records) >= limit and self._progress.rate > 0
                    self._claimed.extend(records[1:])
                    return records[0]
                if not ends_only:  # nothing due at all: sleep until its earliest job is
                    self._progress_bound = False
                    await self._doze(part, now)
        return None

    def _pace_ends(self, part: Partition, now: float, *, full: bool) -> None:
        """Behind (the claim came back full): claim more at a time, up to a slot each, for fewer sorted
        queries per job. Caught up: the partition rests for a gap (`_gap`), and claims go back to the
        usual size."""
        if full:
            self._ends_batch = min(self._ends_batch * 2, max(self.concurrency, CLAIM_BATCH))
            return
        self._ends_batch = CLAIM_BATCH
        self._asleep_until[part.name] = max(self._asleep_until[part.name], now + self._claim_gap)

    async def _doze(self, part: Partition, now: float) -> None:
        nxt = await self.store.earliest(part)
        # a job due already belongs to a replica that claimed it just now, or is claimable next round
        self._asleep_until[part.name] = (
            now + IDLE_S if nxt is None else min(max(nxt, now + self._claim_gap), now + IDLE_S)
        )

    async def _sleep(self) -> None:
        self._wake.clear()
        now = time.time()
        # Budget spent: no end poll was due just now, and progress polls wait for the next token.
        until = self._budget_wait_until if self._budget_wait_until > now else min(self._asleep_until.values())
        wait = until - now
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _poll_one(self, record: dict[str, Any]) -> None:
        if time.time() >= self._stop_at(record):  # waited for a slot too long: the job is due for anyone
            log.warning("poll of %s not started: its lease ran out while it waited for a slot", record["_id"])
            return
        poll = asyncio.create_task(self.poll(record))
        held = asyncio.create_task(self._hold_lease(record, poll))
        try:
            at = await poll
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # this replica is stopping
                raise
            # `_hold_lease` stopped it: the job is (or is about to be) another replica's
            return
        except Exception as exc:  # NATS or MongoDB away mid-poll, or a bug: poll again later, backing off
            failures = int(record.get("failures") or 0)
            delay = backoff(failures, self.retry_s, self.retry_max_s)
            if is_outage(exc):
                log.warning(
                    "poll of %s did not finish (NATS or MongoDB away), polling it again in %.1fs: %s: %s",
                    record["_id"],
                    delay,
                    type(exc).__name__,
                    exc,
                )
            else:
                log.exception(
                    "poll of %s failed %d times in a row, polling it again in %.1fs",
                    record["_id"],
                    failures + 1,
                    delay,
                )
            at = time.time() + delay
            with contextlib.suppress(Exception):  # if MongoDB is away too, the lease runs out instead
                await self.store.release(record, at, failed=True)
        finally:
            held.cancel()
        if at is not None:
            self.due(record.get("provider_id", ""), at)

    def _stop_at(self, record: dict[str, Any]) -> float:
        return float(record["lease_until"]) - self.lease_s * LEASE_MARGIN_SHARE

    async def _hold_lease(self, record: dict[str, Any], poll: asyncio.Task[Any]) -> None:
        """Renew the lease every `keep_alive_s` while the poll runs, and stop the poll when the lease is
        lost, or when it is about to run out with no renewal confirmed (MongoDB slow or away)."""
        renew_at = time.time() + self.keep_alive_s
        while True:
            now, stop_at = time.time(), self._stop_at(record)
            if now >= stop_at:
                log.warning(
                    "poll of %s stopped: its lease ran out before a renewal was confirmed", record["_id"]
                )
                poll.cancel()
                return
            if now < renew_at:
                await asyncio.sleep(min(renew_at, stop_at) - now)
                continue
            until = now + self.lease_s
            try:
                async with asyncio.timeout(stop_at - now):
                    renewed = await self.store.renew(record, until)
            except Exception as exc:  # noqa: BLE001 - timed out or failed: try again while the lease lasts
                log.debug("lease renewal of %s failed: %s: %s", record["_id"], type(exc).__name__, exc)
                renew_at = time.time() + self.keep_alive_s / 3
                continue
            if not renewed:
                log.warning("poll of %s stopped: its lease was lost to another replica", record["_id"])
                poll.cancel()
                return
            record["lease_until"] = until
            renew_at = time.time() + self.keep_alive_s
