from pixsim_provider_sdk.safe_fetch import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_S
from pixsim_runtime.settings import BaseServiceSettings
from pixsim_runtime.storage import StorageSettings
from pydantic import Field


class DispatcherSettings(BaseServiceSettings, StorageSettings):
    service_name: str = "dispatcher"
    job_timeout_s: float = Field(
        default=900.0, alias="PIXSIM_JOB_TIMEOUT", description="Seconds from submit until the poller gives up"
    )
    ack_wait_s: float = Field(
        default=60.0,
        alias="PIXSIM_DISPATCH_ACK_WAIT",
        description="A request held by a dispatcher that died is redelivered to another after this (s)",
    )
    find_attempts: int = Field(
        default=3,
        alias="PIXSIM_FIND_ATTEMPTS",
        description="Times the provider is asked whether it has a job after an ambiguous submit (or a "
        "dispatcher that died while submitting) before it ends as submit_outcome_unknown",
    )
    sweep_interval_s: float = Field(
        default=30.0,
        alias="PIXSIM_ORPHAN_SWEEP_INTERVAL",
        gt=0,
        description="Seconds between the orphan sweep's looks at jobs whose submit outcome is unknown",
    )
    unknown_give_up_s: float = Field(
        default=3600.0,
        alias="PIXSIM_UNKNOWN_GIVE_UP",
        ge=0,
        description="A job whose submit outcome the provider cannot tell for this long fails "
        "submit_outcome_unknown and its credits come back (s)",
    )
    submit_attempts: int = Field(
        default=5, alias="PIXSIM_SUBMIT_ATTEMPTS", description="Tries of a retryable provider error at submit"
    )
    batch_size: int = Field(
        default=20, alias="PIXSIM_DISPATCH_BATCH", description="Jobs submitted concurrently"
    )
    dispatch_timeout_s: float = Field(
        default=600.0,
        alias="PIXSIM_DISPATCH_TIMEOUT",
        description="Seconds a job may wait for an account before it fails with no_account_available",
    )
    max_account_attempts: int = Field(
        default=10,
        alias="PIXSIM_MAX_ACCOUNT_ATTEMPTS",
        description="Accounts (or cooldown retries) a job is offered to before it fails with no_account_available",
    )
    account_wait_s: float = Field(
        default=0.5,
        alias="PIXSIM_ACCOUNT_WAIT",
        description="First re-check of a job waiting for a free account (s)",
    )
    account_wait_max_s: float = Field(
        default=5.0,
        alias="PIXSIM_ACCOUNT_WAIT_MAX",
        description="Longest interval between such re-checks (s)",
    )
    cooldown_base_s: float = Field(
        default=2.0,
        alias="PIXSIM_COOLDOWN_BASE",
        description="First cooldown of a rate-limited account without Retry-After; doubles each time in a row (s)",
    )
    cooldown_max_s: float = Field(
        default=300.0, alias="PIXSIM_COOLDOWN_MAX", description="Longest cooldown (s)"
    )
    lease_ttl_s: float = Field(
        default=300.0,
        alias="PIXSIM_LEASE_TTL",
        description="A slot taken by a dispatcher that died while submitting comes back after this (s)",
    )
    lease_grace_s: float = Field(
        default=120.0,
        alias="PIXSIM_LEASE_GRACE",
        description="A submitted job's slot comes back this long after its deadline if its end was never seen (s)",
    )
    fetch_allow_hosts: str = Field(
        default="",
        alias="PIXSIM_FETCH_ALLOW_HOSTS",
        description="Private hosts sources may be fetched from: host or host:port, comma-separated",
    )
    fetch_max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES, alias="PIXSIM_FETCH_MAX_BYTES", description="Largest source file fetched"
    )
    fetch_timeout_s: float = Field(
        default=DEFAULT_TIMEOUT_S,
        alias="PIXSIM_FETCH_TIMEOUT",
        description="Deadline of one whole source fetch (s)",
    )
