from pixsim_runtime.settings import BaseServiceSettings
from pydantic import Field


class GatewaySettings(BaseServiceSettings):
    service_name: str = "gateway"
    http_port: int = Field(default=8000, alias="PIXSIM_HTTP_PORT")
    sse_keepalive_s: float = Field(default=15.0, alias="PIXSIM_SSE_KEEPALIVE", description="SSE comment interval")
