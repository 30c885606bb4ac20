"""One generation seen from both ends: what the bench submitted and saw on NATS, joined with what the fake
provider saw (when the job was created, how long it runs, when it was asked for its status).

The fake knows a job's generation id as its reference (the adapter sends it as the Idempotency-Key).
All times are `time.monotonic()` of this machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .load import Submissions, Tracker
from .measure import pct


@dataclass
class Job:
    gid: str
    submitted: float  # the bench started its submit (POST or publish)
    created: float | None  # the fake created the job (None: it never reached the provider)
    latency: float  # how long the fake runs it
    polls: list[float]  # status calls (GET /v1/jobs/{id}) the fake answered for it
    ended: float | None  # the terminal event reached NATS
    outcome: str  # completed, "failed: provider_timeout", unfinished, ...

    @property
    def finished(self) -> float | None:
        """When the provider had the result (the fake's clock): created + latency."""
        return None if self.created is None else self.created + self.latency

    @property
    def detection_lag(self) -> float | None:
        """Provider finish -> completed event on NATS."""
        if self.outcome != "completed" or self.ended is None or self.finished is None:
            return None
        return self.ended - self.finished

    @property
    def first_poll_lag(self) -> float | None:
        return None if self.created is None or not self.polls else self.polls[0] - self.created

    @property
    def longest_unpolled(self) -> float | None:
        """The longest time the job went without a status call, from its creation to its last call (to its
        terminal event if it got no call at all)."""
        if self.created is None:
            return None
        times = [self.created, *self.polls]
        if not self.polls and self.ended is not None:
            times.append(self.ended)
        return max((b - a for a, b in pairwise(times)), default=None)


def join(fake_jobs: dict[str, Any], subs: Submissions, tracker: Tracker) -> list[Job]:
    """The jobs of `subs`, with the fake's view of each (`Fake.jobs()`)."""
    by_reference = {j["reference"]: j for j in fake_jobs["jobs"] if j.get("reference") in subs.start}
    out = []
    for gid, t0 in subs.start.items():
        remote = by_reference.get(gid, {})
        ended = tracker.ended.get(gid)
        out.append(
            Job(
                gid,
                t0,
                remote.get("created"),
                remote.get("latency", 0.0),
                sorted(remote.get("polls", [])),
                ended[1] if ended else None,
                tracker.outcome(gid),
            )
        )
    return out


def dist(values: list[float | None]) -> dict[str, float | None]:
    """p50 / p95 / max / mean of the values that are not None, rounded to ms."""
    v = [x for x in values if x is not None]

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return {
        "n": len(v),
        "p50": r(pct(v, 50)),
        "p95": r(pct(v, 95)),
        "max": r(max(v, default=None)),
        "mean": r(sum(v) / len(v) if v else None),
    }
