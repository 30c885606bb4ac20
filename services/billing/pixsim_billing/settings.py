from pixsim_runtime.settings import BaseServiceSettings


class BillingSettings(BaseServiceSettings):
    service_name: str = "billing"
