"""The poll schedule, simulated against jobs of known length: polls land on the expected end, are dense
around it, sparse before it, back off after it, and never outnumber a fixed-interval poller's."""

from __future__ import annotations

import itertools
import math

import pytest
from pixsim_contracts import GenerationSubmitted
from pixsim_poller.durations import CENSORED_SHRINK, MIN_SAMPLES, duration_key, learned, observed
from pixsim_poller.schedule import DENSE_POLLS, UNKNOWN_PATIENCE_S, Policy, expected_end, next_delay

PROD = Policy()  # the defaults: 1 s dense, 2 s without an estimate, 15 s for progress, 30 s at most


def simulate(
    policy: Policy,
    ends_at: float,
    expected: float | None = None,
    *,
    progress: bool = True,
    deadline: float = 900.0,
) -> list[float]:
    """Poll times (s after submit) of a job that ends at `ends_at`, reporting progress as the sim does
    (0 for its first 10 %, then the fraction of its time), scheduled as the poller schedules it."""
    t = next_delay(policy, elapsed=0.0, polls=0, expected_s=expected, until_deadline=deadline)
    polls: list[float] = []
    seen: tuple[float | None, float | None] = (None, None)
    while True:
        polls.append(t)
        if t >= ends_at or t > deadline:
            return polls
        if progress:
            fraction = t / ends_at
            seen = (0.0 if fraction < 0.1 else round(fraction, 2), t)
        t += next_delay(
            policy,
            elapsed=t,
            polls=len(polls),
            expected_s=expected,
            progress=seen[0],
            progress_at=seen[1],
            until_deadline=deadline - t,
        )


def test_a_job_whose_end_is_known_is_polled_once_at_its_end() -> None:
    assert simulate(PROD, 4.0, expected=4.0) == [4.0]
    assert simulate(PROD, 12.0, expected=12.0, progress=False) == [12.0]


def test_long_before_the_end_only_progress_polls_in_equal_steps_landing_on_it() -> None:
    assert simulate(PROD, 60.0, expected=60.0) == pytest.approx([15.0, 30.0, 45.0, 60.0])
    assert simulate(PROD, 20.0, expected=20.0) == pytest.approx([10.0, 20.0])


def test_around_the_end_polls_are_dense_then_back_off() -> None:
    polls = simulate(PROD, 30.0, expected=10.0, progress=False)
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert polls[0] == 10.0
    assert gaps[:DENSE_POLLS] == [PROD.min_interval] * DENSE_POLLS
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(gaps)), gaps  # never denser again
    assert polls[-1] - 30.0 <= PROD.backoff * 10  # found within a share of the overrun


def test_progress_moves_a_wrong_estimate() -> None:
    # estimated 10 s, really 100 s: progress tells, and polling goes sparse again until near the end
    polls = simulate(PROD, 100.0, expected=10.0)
    assert polls == pytest.approx([10.0, 25.0, 40.0, 55.0, 70.0, 85.0, 100.0])
    assert simulate(PROD, 50.0, expected=100.0)[-1] - 50.0 < PROD.progress_interval  # too long: found sooner
    assert expected_end(80.0, 0.5, 50.0) == pytest.approx(0.5 * 100 + 0.5 * 80)
    assert expected_end(10.0, 0.5, 50.0) == pytest.approx(100.0)  # outlived: progress alone
    assert expected_end(None, 0.25, 5.0) == pytest.approx(20.0)
    assert expected_end(8.0, 0.01, 5.0) == 8.0  # too early to say
    assert expected_end(None, None, None) is None


def test_with_nothing_known_a_fixed_interval_then_backing_off() -> None:
    assert simulate(PROD, 7.0, progress=False) == [2.0, 4.0, 6.0, 8.0]
    long = simulate(PROD, 600.0, progress=False)
    early = [p for p in long if p <= UNKNOWN_PATIENCE_S]
    assert early == [2.0 * i for i in range(1, len(early) + 1)]
    gaps = [b - a for a, b in itertools.pairwise(long)]
    assert max(gaps) == PROD.max_interval and len(long) < 600 / PROD.interval / 2


@pytest.mark.parametrize("policy", [PROD, Policy(min_interval=0.1, interval=0.3, max_interval=0.3)])
@pytest.mark.parametrize("expected", [None, 0.5, 1.0, 4.0, 10.0, 30.0, 120.0])
@pytest.mark.parametrize("ends_at", [0.3, 2.5, 9.0, 10.0, 11.0, 25.0, 100.0, 400.0])
@pytest.mark.parametrize("progress", [True, False])
def test_never_more_calls_than_a_fixed_poller_and_never_too_close_or_too_far(
    policy, expected, ends_at, progress
):
    polls = simulate(policy, ends_at, expected, progress=progress)
    interval = policy.clamp(policy.interval)
    for n, t in enumerate(polls, start=1):  # at any moment, at most one more call than a fixed poller
        assert n <= math.floor(t / interval + 1e-9) + 1, (n, t, polls)
    assert len(polls) <= math.ceil(ends_at / interval) + 1
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert all(policy.min_interval - 1e-9 <= g <= policy.max_interval + 1e-9 for g in gaps), gaps
    assert polls[0] >= policy.min_interval - 1e-9
    assert polls[-1] - ends_at <= policy.max_interval + 1e-9  # an end is found within the longest wait


def test_the_deadline_and_retry_after_bound_the_wait() -> None:
    assert next_delay(PROD, elapsed=100.0, polls=10, expected_s=600.0, until_deadline=3.0) == 3.0
    assert (
        next_delay(PROD, elapsed=100.0, polls=10, expected_s=600.0, until_deadline=-5.0) == PROD.min_interval
    )
    assert next_delay(PROD, elapsed=10.0, polls=1, expected_s=11.0, retry_after=7.0) == 7.0
    polls = simulate(PROD, math.inf, expected=None, deadline=100.0, progress=False)
    assert 100.0 < polls[-1] <= 100.0 + PROD.min_interval


def _job(**params) -> GenerationSubmitted:
    return GenerationSubmitted(
        generation_id="g1",
        provider_id="sim",
        operation_type="text_to_video",
        account_id="system-sim",
        provider_job_id="j",
        deadline_at="2030-01-01T00:00:00Z",
        params=params,
    )


def test_durations_are_learned_per_provider_operation_and_the_params_that_matter() -> None:
    assert (
        duration_key(_job(prompt="a fox", duration=5, quality="720p"))
        == "sim:text_to_video:duration=5,quality=720p"
    )
    assert duration_key(_job(prompt="another fox", duration=5, quality="720p", seed=3)) == duration_key(
        _job(prompt="a fox", duration=5, quality="720p")
    )
    assert duration_key(_job(prompt="x")) == "sim:text_to_video"
    assert learned([1.0] * (MIN_SAMPLES - 1)) is None
    assert learned([1.0, 9.0, 2.0, 3.0]) == 2.5
    assert observed(10.0, 8.0) == 9.0  # between the poll that found it running and the one that found it done
    assert observed(10.0, None) == CENSORED_SHRINK * 10.0  # done at the first poll: at most that long
