from pydantic import Field

from pixsim_runtime.settings import BaseServiceSettings


class DispatcherSettings(BaseServiceSettings):
    service_name: str = "dispatcher"
    job_timeout_s: float = Field(
        default=900.0, alias="PIXSIM_JOB_TIMEOUT", description="Seconds from submit until the poller gives up"
    )
    submit_attempts: int = Field(
        default=5, alias="PIXSIM_SUBMIT_ATTEMPTS", description="Tries of a retryable provider error at submit"
    )
    batch_size: int = Field(default=20, alias="PIXSIM_DISPATCH_BATCH", description="Jobs submitted concurrently")
