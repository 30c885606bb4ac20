"""When to poll next: an interval that grows with each poll, capped."""

from __future__ import annotations


def next_delay(polls_so_far: int, first: float, factor: float, cap: float) -> float:
    return min(first * factor ** max(polls_so_far - 1, 0), cap)
