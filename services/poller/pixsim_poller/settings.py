from pixsim_runtime.consumers import DEFAULT_MAX_ACK_PENDING
from pixsim_runtime.settings import BaseServiceSettings
from pydantic import Field


class PollerSettings(BaseServiceSettings):
    """The poll schedule (`pixsim_poller.schedule`); every interval is kept within min..max."""

    service_name: str = "poller"
    poll_min_interval: float = Field(
        default=1.0,
        alias="PIXSIM_POLL_MIN_INTERVAL",
        description="Polls around a job's expected end are this far apart, and no two polls of a job closer (s)",
    )
    poll_interval: float = Field(
        default=2.0,
        alias="PIXSIM_POLL_INTERVAL",
        description="With no expected duration a job is polled this often; and no job is polled more often "
        "on average than this (s)",
    )
    poll_progress_interval: float = Field(
        default=15.0,
        alias="PIXSIM_POLL_PROGRESS_INTERVAL",
        description="Long before a job's expected end it is polled this often, for its progress (s)",
    )
    poll_progress_rate: float = Field(
        default=10.0,
        alias="PIXSIM_POLL_PROGRESS_RATE",
        description="Progress polls (before a job's expected end) per second per replica at most; end polls are "
        "never limited by it. 0: no limit",
    )
    poll_max_interval: float = Field(
        default=30.0,
        alias="PIXSIM_POLL_MAX_INTERVAL",
        description="The longest wait between two polls of a job (s)",
    )
    poll_backoff: float = Field(
        default=1.5,
        alias="PIXSIM_POLL_BACKOFF",
        description="Past the expected end, each wait grows by this factor (as a share of the time overdue)",
    )
    lease_s: float = Field(
        default=15.0,
        alias="PIXSIM_POLL_ACK_WAIT",
        description="A job being polled is leased to one replica for this long, renewed while its poll runs: "
        "a job held by a poller that died is polled by another after this (s)",
    )
    batch_size: int = Field(
        default=50, alias="PIXSIM_POLL_BATCH", description="Jobs polled concurrently per replica"
    )
    max_ack_pending: int = Field(
        default=DEFAULT_MAX_ACK_PENDING,
        alias="PIXSIM_POLL_MAX_ACK_PENDING",
        description="`generation.submitted` messages handed out unacked, over all replicas: they are acked once "
        "scheduled, so this bounds submits being recorded, never the jobs in flight",
    )
    max_bad_polls: int = Field(
        default=5,
        alias="PIXSIM_POLL_MAX_BAD_ANSWERS",
        description="Unusable poll answers in a row (bad body, server error, adapter error) that end a job "
        "with that error's code; an unreachable provider is waited for until the deadline",
    )
    keep_alive_s: float = Field(
        default=5.0,
        alias="PIXSIM_POLL_KEEP_ALIVE",
        description="While a poll runs, its lease is renewed this often (at most a third of the lease), so "
        "no other replica polls the same job meanwhile (s)",
    )
