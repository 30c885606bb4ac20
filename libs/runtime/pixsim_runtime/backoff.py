"""The one backoff: how long to wait after some failures in a row."""

from __future__ import annotations

import math
import random

_MAX_DOUBLINGS = 64  # past this every delay is at its cap anyway; also keeps 2**n a float that fits


def backoff(failures: int, first_s: float, max_s: float = math.inf, *, jitter: float = 0.0) -> float:
    """`first_s` after the first failure (`failures` = 0 failures before it), doubling with each one
    after, at most `max_s`. With `jitter` (0..1) the delay is spread uniformly over ±jitter of itself, so
    clients that failed together do not all come back at once."""
    delay = min(first_s * 2.0 ** min(max(failures, 0), _MAX_DOUBLINGS), max_s)
    return delay * (1 + jitter * (2 * random.random() - 1)) if jitter else delay
