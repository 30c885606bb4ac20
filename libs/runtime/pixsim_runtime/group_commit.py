"""What the group commits share (the gateway's projector, billing's ledger): callers wait on a future
while one task writes everything that came in meanwhile, then answers each of them."""

from __future__ import annotations

import asyncio
from typing import Any


def settle(done: asyncio.Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Answer a waiting caller: its result, or its error (a cancellation cancels it); nothing when it
    has its answer already or gave up waiting (cancelled)."""
    if done.done():
        return
    if isinstance(error, Exception):
        done.set_exception(error)
    elif error is not None:
        done.cancel()
    else:
        done.set_result(result)
