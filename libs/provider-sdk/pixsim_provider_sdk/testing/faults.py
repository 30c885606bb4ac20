"""The knobs every fake shares to fail the way real providers fail, and the places they act.

A fake mixes `SubmitFaults` into its `JsonFakeServer`, passes its constructor's remaining keywords to
`init_faults`, and in its submit route answers in its own provider's words:

    if self.fails_submit():
        return <the provider's overloaded 5xx>
    if self.rate_limits_submit():
        return <its 429, Retry-After: self.retry_after>
    ...
    response = <the accepted answer>
    self.after_accept(response)
    return response

and draws a new job's outcome with `self.job_fails()`. The knobs stay plain attributes, so a test may
turn them on a running fake (`fake.fail_submits = 2`).
"""

from __future__ import annotations

import random

from .fake_http import FakeResponse


class SubmitFaults:
    """Knobs: `latency` (seconds a job takes), `rate_limit_every` (every n-th submit gets 429),
    `fail_submits` (the next n submits get a server error), `fail_rate` (the share of jobs that end
    failed), `retry_after` (the 429's hint, seconds), `accept_then_stall` / `accept_then_drop` (the next n
    accepted submits answer only after `stall_s`, a client timeout, or never: the connection is dropped),
    `seed` (for the random draws)."""

    def init_faults(
        self,
        *,
        latency: float = 1.0,
        rate_limit_every: int = 0,
        fail_submits: int = 0,
        fail_rate: float = 0.0,
        retry_after: int = 1,
        accept_then_stall: int = 0,
        accept_then_drop: int = 0,
        stall_s: float = 40.0,
        seed: int | None = None,
    ) -> None:
        if latency < 0 or not 0 <= fail_rate <= 1 or rate_limit_every < 0 or fail_submits < 0:
            raise ValueError("knobs: latency >= 0, 0 <= fail_rate <= 1, rate_limit_every/fail_submits >= 0")
        self.latency = float(latency)
        self.rate_limit_every = int(rate_limit_every)
        self.fail_submits = int(fail_submits)
        self.fail_rate = float(fail_rate)
        self.retry_after = retry_after
        self.accept_then_stall = int(accept_then_stall)
        self.accept_then_drop = int(accept_then_drop)
        self.stall_s = float(stall_s)
        self.submit_count = 0  # submits that got past `fails_submit`
        self._random = random.Random(seed)

    def chance(self, rate: float) -> bool:
        """True with probability `rate` (no draw at all when it is 0, so seeded runs stay comparable)."""
        return rate > 0 and self._random.random() < rate

    def fails_submit(self, rate: float = 0.0) -> bool:
        """Whether this submit fails before anything is created: the next of `fail_submits`, or one in
        `rate` at random."""
        if self.fail_submits > 0 or self.chance(rate):
            self.fail_submits = max(0, self.fail_submits - 1)
            return True
        return False

    def rate_limits_submit(self) -> bool:
        """Count this submit; whether it is the `rate_limit_every`-th (answer 429 with `retry_after`)."""
        self.submit_count += 1
        return bool(self.rate_limit_every) and self.submit_count % self.rate_limit_every == 0

    def after_accept(
        self, response: FakeResponse, *, drop_rate: float = 0.0, stall_rate: float = 0.0
    ) -> str | None:
        """Fault an accepted submit's answer (the job stands): drop the connection (`accept_then_drop`, or
        one in `drop_rate`), else answer only after `stall_s` (`accept_then_stall`, or one in
        `stall_rate`). Returns the fault applied, "drop" or "stall", or None."""
        if self.accept_then_drop > 0 or self.chance(drop_rate):
            self.accept_then_drop = max(0, self.accept_then_drop - 1)
            response.drop = True
            return "drop"
        if self.accept_then_stall > 0 or self.chance(stall_rate):
            self.accept_then_stall = max(0, self.accept_then_stall - 1)
            response.stall_s = self.stall_s
            return "stall"
        return None

    def job_fails(self) -> bool:
        """Whether a new job ends failed (`fail_rate`)."""
        return self.chance(self.fail_rate)
