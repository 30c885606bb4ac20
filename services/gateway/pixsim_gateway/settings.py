from pixsim_runtime.settings import BaseServiceSettings
from pixsim_runtime.storage import StorageSettings
from pydantic import Field

from .limits import RoleLimits
from .oidc import OidcConfig


class GatewaySettings(BaseServiceSettings, StorageSettings):
    service_name: str = "gateway"
    http_port: int = Field(default=8000, alias="PIXSIM_HTTP_PORT")
    sse_keepalive_s: float = Field(
        default=15.0, alias="PIXSIM_SSE_KEEPALIVE", description="SSE comment interval"
    )
    orphan_event_wait_s: float = Field(
        default=600.0,
        alias="PIXSIM_ORPHAN_EVENT_WAIT",
        ge=0,
        description="How long (s, from the event's time) an event may wait for its generation's `requested` "
        "to be projected before it is dead-lettered (the two travel on different consumers)",
    )

    # -- who may call ---------------------------------------------------------------------------
    bootstrap_admin_key: str | None = Field(
        default=None,
        alias="PIXSIM_BOOTSTRAP_ADMIN_KEY",
        description="An admin API key stored (hashed) at start-up",
    )
    bootstrap_admin_user: str = Field(default="admin", alias="PIXSIM_BOOTSTRAP_ADMIN_USER")
    oidc_issuer: str | None = Field(default=None, alias="PIXSIM_OIDC_ISSUER")
    oidc_audience: str | None = Field(default=None, alias="PIXSIM_OIDC_AUDIENCE")
    oidc_jwks_url: str | None = Field(default=None, alias="PIXSIM_OIDC_JWKS_URL")
    oidc_user_claim: str = Field(default="sub", alias="PIXSIM_OIDC_USER_CLAIM")
    oidc_role_claim: str = Field(
        default="role",
        alias="PIXSIM_OIDC_ROLE_CLAIM",
        description="A string or list claim; the value `admin` makes an admin",
    )
    oidc_algorithms: str = Field(default="RS256,ES256", alias="PIXSIM_OIDC_ALGORITHMS")
    oidc_jwks_refresh_s: float = Field(
        default=30.0,
        ge=0,
        alias="PIXSIM_OIDC_JWKS_REFRESH",
        description="Least seconds between JWKS fetches caused by unknown key ids (rotation)",
    )

    # -- archiving results into PixSim's storage (see archive.py) ------------------------------
    archive_retry_s: float = Field(
        default=5.0,
        gt=0,
        alias="PIXSIM_ARCHIVE_RETRY",
        description="First delay before a failed copy is tried again (doubles)",
    )
    archive_retry_max_s: float = Field(default=600.0, gt=0, alias="PIXSIM_ARCHIVE_RETRY_MAX")
    archive_retry_for_s: float = Field(
        default=86400.0,
        ge=0,
        alias="PIXSIM_ARCHIVE_RETRY_FOR",
        description="How long a failing copy is retried before it is given up",
    )

    webhook_retry_s: float = Field(
        default=5.0,
        gt=0,
        alias="PIXSIM_WEBHOOK_RETRY",
        description="First delay before a failed webhook delivery is retried (doubles)",
    )
    webhook_retry_max_s: float = Field(default=3600.0, gt=0, alias="PIXSIM_WEBHOOK_RETRY_MAX")
    webhook_retry_for_s: float = Field(
        default=86400.0,
        ge=0,
        alias="PIXSIM_WEBHOOK_RETRY_FOR",
        description="How long a failing delivery is retried (default 24 h)",
    )
    webhook_subscription_cache_s: float = Field(
        default=5.0,
        ge=0,
        alias="PIXSIM_WEBHOOK_SUBSCRIPTION_CACHE",
        description="How long a replica trusts a webhook subscription it has read (0: read it for every event)",
    )

    # -- limits (0 = none) ----------------------------------------------------------------------
    user_rate: float = Field(default=20.0, ge=0, alias="PIXSIM_USER_RATE", description="requests/s per user")
    user_burst: int = Field(default=40, ge=1, alias="PIXSIM_USER_BURST")
    user_max_in_flight: int = Field(default=100, ge=0, alias="PIXSIM_USER_MAX_IN_FLIGHT")
    admin_rate: float = Field(default=0.0, ge=0, alias="PIXSIM_ADMIN_RATE")
    admin_burst: int = Field(default=100, ge=1, alias="PIXSIM_ADMIN_BURST")
    admin_max_in_flight: int = Field(default=0, ge=0, alias="PIXSIM_ADMIN_MAX_IN_FLIGHT")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, alias="PIXSIM_MAX_BODY_BYTES")
    sse_max_per_user: int = Field(default=20, ge=1, alias="PIXSIM_SSE_MAX_PER_USER")
    sse_max_total: int = Field(default=1000, ge=1, alias="PIXSIM_SSE_MAX_TOTAL")

    def oidc(self) -> OidcConfig | None:
        if not (self.oidc_issuer and self.oidc_audience and self.oidc_jwks_url):
            return None
        return OidcConfig(
            issuer=self.oidc_issuer,
            audience=self.oidc_audience,
            jwks_url=self.oidc_jwks_url,
            user_claim=self.oidc_user_claim,
            role_claim=self.oidc_role_claim,
            algorithms=tuple(a.strip() for a in self.oidc_algorithms.split(",") if a.strip()),
        )

    def role_limits(self) -> dict[str, RoleLimits]:
        return {
            "user": RoleLimits(self.user_rate, self.user_burst, self.user_max_in_flight),
            "admin": RoleLimits(self.admin_rate, self.admin_burst, self.admin_max_in_flight),
        }
