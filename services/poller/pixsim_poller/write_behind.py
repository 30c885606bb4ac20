"""Writes that may wait a moment, made in batches: taking finished jobs off the schedule, and saving the
durations they taught.

Both are safe to lose. A job whose events are out but which was never closed still holds its lease and
its outbox; if this replica dies first, the next holder republishes the same events (JetStream and every
consumer drop them by id) and closes it. A lost duration sample only makes an estimate a little older.
Batched, a busy replica closes every job of the last moment in one round trip instead of one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .durations import Durations
from .store import PollStore

log = logging.getLogger(__name__)


class WriteBehind:
    def __init__(self, store: PollStore, durations: Durations, interval_s: float) -> None:
        self.store = store
        self.durations = durations
        self.interval_s = interval_s
        self._closing: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def close(self, generation_id: str) -> None:
        """The job's final events are out: take it off the schedule at the next flush."""
        self._closing.add(generation_id)

    async def flush(self) -> None:
        closing, self._closing = self._closing, set()
        try:
            if closing:
                await self.store.close_many(sorted(closing))
        except Exception:
            self._closing |= closing
            raise
        finally:
            await self.durations.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="poller-write-behind")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - MongoDB away: kept for the next flush
                log.warning("poller: write-behind flush failed: %s: %s", type(exc).__name__, exc)
