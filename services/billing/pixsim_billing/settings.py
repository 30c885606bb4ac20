from pixsim_runtime.settings import BaseServiceSettings
from pydantic import Field


class BillingSettings(BaseServiceSettings):
    service_name: str = "billing"
    credits_low_threshold: int = Field(
        default=10,
        alias="PIXSIM_CREDITS_LOW_THRESHOLD",
        description="account.credits_low is published when a known balance falls to this or below",
    )
    ack_wait_s: float = Field(
        default=30.0,
        alias="PIXSIM_BILLING_ACK_WAIT",
        description="Credit events a billing replica was booking when it died are booked by another after this (s)",
    )
