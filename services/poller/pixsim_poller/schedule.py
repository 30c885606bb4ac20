"""When to poll a job next: arithmetic over what is known about it. No I/O here.

What is known: the seconds since the job was submitted (`elapsed`), the polls made so far, the
expected duration (the provider's `expected_duration_s` hook, else what its past jobs took, else
nothing: `pixsim_poller.durations`) and the last progress fraction the provider reported, with when.

- The expected end (`eta`) is the expected duration refined by progress: a fraction p seen at t says
  the job takes about t / p; the two are blended by p, so early progress moves the estimate little,
  and once the job has outlived the estimate its progress alone says.
- Long before the eta a job is polled only as often as its progress is worth (`progress_interval`),
  in equal steps that land on the eta: a job expected to take 4 s is first polled at 4 s.
- From the eta on: every `min_interval` for `DENSE_POLLS` of them, then backing off, each wait a share
  `backoff - 1` of the time already overdue, up to `max_interval`.
- Nothing known: every `interval` for `UNKNOWN_PATIENCE_S`, then backing off the same way.
- The budget: poll n+1 of a job is never sooner than n x `interval` after its submit, so no job costs
  more calls than a poller that polls it every `interval` (at most one more: a first poll before the
  first `interval`, for a job expected to be that short).
- Never later than the deadline (where one last poll decides), never sooner than a provider's
  `Retry-After`, and never two polls of a job closer than `min_interval`.
Every interval is kept within [`min_interval`, `max_interval`].

End polls before progress polls (`ends_from`): from its expected end on (or always, when nothing is
known, and at its deadline), a job's polls are the ones that detect results, and a replica short of
capacity claims those first; progress polls get what capacity is left, so a flood of long jobs
slows their progress events, never the detection of finished jobs. A job's stored `ends_from` is when it
is next due as an end poll (its next poll, not before this), and end polls are claimed in that order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Progress below this says too little about the end to move it.
MIN_PROGRESS = 0.05
#: Polls `min_interval` apart once the expected end has come, before backing off.
DENSE_POLLS = 3
#: With no expected duration, seconds of polling every `interval` before backing off.
UNKNOWN_PATIENCE_S = 60.0


@dataclass(frozen=True)
class Policy:
    min_interval: float = 1.0
    interval: float = 2.0
    progress_interval: float = 15.0
    max_interval: float = 30.0
    backoff: float = 1.5

    def clamp(self, seconds: float) -> float:
        return min(max(seconds, self.min_interval), max(self.max_interval, self.min_interval))


def expected_end(expected_s: float | None, progress: float | None, progress_at: float | None) -> float | None:
    """Seconds after submit the job should end, or None when nothing says."""
    by_progress = None
    if progress is not None and progress_at is not None and MIN_PROGRESS <= progress < 1:
        by_progress = progress_at / progress
    if by_progress is None:
        return expected_s
    if expected_s is None or progress_at >= expected_s:  # type: ignore[operator]
        return by_progress  # no estimate, or one the job has outlived
    return progress * by_progress + (1 - progress) * expected_s  # type: ignore[operator]


def next_delay(
    policy: Policy,
    *,
    elapsed: float,
    polls: int,
    expected_s: float | None = None,
    progress: float | None = None,
    progress_at: float | None = None,
    until_deadline: float | None = None,
    retry_after: float | None = None,
) -> float:
    """Seconds from now until the job's next poll. `polls`: polls made so far (0 before the first)."""
    interval = policy.clamp(policy.interval)
    eta = expected_end(expected_s, progress, progress_at)
    if eta is None:
        gap = (
            interval
            if elapsed < UNKNOWN_PATIENCE_S
            else max(interval, _backing_off(policy, elapsed - UNKNOWN_PATIENCE_S))
        )
    elif (left := eta - elapsed) > 0:
        far = policy.clamp(policy.progress_interval)
        gap = left / math.ceil(left / far)
    elif -left < DENSE_POLLS * policy.min_interval:
        gap = policy.min_interval
    else:
        gap = _backing_off(policy, -left)
    gap = max(gap, polls * interval - elapsed)
    if retry_after:
        gap = max(gap, retry_after)
    if until_deadline is not None:
        gap = min(gap, until_deadline)
    return max(gap, policy.min_interval)


def _backing_off(policy: Policy, overdue: float) -> float:
    return policy.clamp((policy.backoff - 1) * overdue)


def ends_from(
    started: float,
    deadline: float,
    next_poll: float,
    expected_s: float | None,
    progress: float | None = None,
    progress_at: float | None = None,
) -> float:
    """Epoch seconds at which a job is next due as an end poll (claimed before progress polls, and in this
    order): its next poll, but not before its expected end (`started` when nothing is known), and that
    at the latest at its deadline."""
    eta = expected_end(expected_s, progress, progress_at)
    return max(next_poll, min(started + (eta or 0.0), deadline))
