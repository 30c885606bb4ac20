from pixsim_runtime.settings import BaseServiceSettings
from pydantic import Field


class PollerSettings(BaseServiceSettings):
    service_name: str = "poller"
    poll_min_interval: float = Field(default=1.0, alias="PIXSIM_POLL_MIN_INTERVAL", description="First poll delay (s)")
    poll_max_interval: float = Field(default=15.0, alias="PIXSIM_POLL_MAX_INTERVAL", description="Backoff cap (s)")
    poll_backoff: float = Field(default=1.5, alias="PIXSIM_POLL_BACKOFF", description="Interval growth per poll")
    ack_wait_s: float = Field(
        default=15.0, alias="PIXSIM_POLL_ACK_WAIT",
        description="A job held by a poller that died is polled by another after this (s)",
    )
    batch_size: int = Field(default=50, alias="PIXSIM_POLL_BATCH", description="Jobs polled concurrently")
    max_bad_polls: int = Field(
        default=5, alias="PIXSIM_POLL_MAX_BAD_ANSWERS",
        description="Unusable poll answers in a row (bad body, server error, adapter error) that end a job "
                    "with that error's code; an unreachable provider is waited for until the deadline",
    )
    keep_alive_s: float = Field(
        default=5.0, alias="PIXSIM_POLL_KEEP_ALIVE",
        description="While a poll runs, its message's ack wait is extended this often (s), so no other "
                    "replica polls the same job meanwhile",
    )
