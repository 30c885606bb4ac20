"""Settings shared by every service, read from the environment (see the README's configuration table)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .bus_auth import inbox_prefix, read_password


class BaseServiceSettings(BaseSettings):
    """Defaults point at the local servers `make run` starts."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    nats_url: str = Field(default="nats://127.0.0.1:4222", alias="NATS_URL")
    nats_user: str | None = Field(default=None, alias="NATS_USER", description="Default: the service's name")
    nats_password: SecretStr | None = Field(default=None, alias="NATS_PASSWORD")
    nats_credentials_dir: str | None = Field(
        default=None,
        alias="PIXSIM_NATS_CREDENTIALS_DIR",
        description="A directory with one file per NATS user holding its password; the service reads its own",
    )
    mongo_url: str = Field(default="mongodb://127.0.0.1:27017/?directConnection=true", alias="MONGO_URL")
    mongo_db: str = Field(default="pixsim", alias="PIXSIM_MONGO_DB")
    mongo_timeout_s: float = Field(
        default=10.0,
        alias="PIXSIM_MONGO_TIMEOUT",
        description="Seconds a MongoDB call waits for a server before it fails (and is retried: an outage "
        "never dead-letters a message)",
    )
    providers_dir: str = Field(default="providers", alias="PIXSIM_PROVIDERS_DIR")
    http_host: str = Field(default="127.0.0.1", alias="PIXSIM_HTTP_HOST")
    http_port: int = Field(
        default=0, alias="PIXSIM_HTTP_PORT", description="Health/API port; 0 picks a free one"
    )
    stream_replicas: int = Field(default=1, alias="PIXSIM_STREAM_REPLICAS", description="3 in a NATS cluster")
    max_attempts: int = Field(
        default=5,
        alias="PIXSIM_MAX_ATTEMPTS",
        description="Deliveries of a failing message before dead-lettering",
    )
    retry_backoff: float = Field(
        default=0.5, alias="PIXSIM_RETRY_BACKOFF", description="First retry delay (s)"
    )
    log_level: str = Field(default="INFO", alias="PIXSIM_LOG_LEVEL")

    service_name: str = "pixsim"

    def nats_connection(self) -> tuple[str, str | None, str]:
        """(user, password, reply-inbox prefix) for this service's NATS connection.

        The password is `NATS_PASSWORD`, else the user's file in `PIXSIM_NATS_CREDENTIALS_DIR`, else None
        (credentials in `NATS_URL`, or a server without authorization).
        """
        url_user = urlsplit(self.nats_url).username
        user = self.nats_user or url_user or self.service_name
        password = self.nats_password.get_secret_value() if self.nats_password else None
        if password is None and self.nats_credentials_dir:
            password = read_password(self.nats_credentials_dir, user)
        return user, password, inbox_prefix(user)
