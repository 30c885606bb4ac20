"""Session fixtures: real servers (local nats-server + nx-27017, or NATS_URL/MONGO_URL), the sim fake,
and the whole pipeline served in-process with an in-memory span exporter.

NATS runs with authorization on (pixsim_runtime.bus_auth): each service connects as its own user, with
its password from the credentials directory of `Servers.nats_credentials`; `Servers.nats_url` carries the
`admin` user's credentials, for what the tests themselves read and publish."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pixsim_provider_sdk import discover
from pixsim_provider_sdk.safe_fetch import allow_in_env
from pixsim_provider_sdk.testing.fake_http import load_fake
from pixsim_runtime import local_servers
from pixsim_runtime.bus_auth import BusCredentials, server_authorization, without_credentials
from pixsim_runtime.inprocess import serve
from pixsim_runtime.telemetry import init_metrics, init_telemetry
from support import ADMIN_KEY, api_client

REPO = Path(__file__).resolve().parents[1]
PROVIDERS = REPO / "providers"

os.environ.setdefault("PIXSIM_CREDENTIALS_KEY", Fernet.generate_key().decode())
os.environ["PIXSIM_API_KEY"] = ADMIN_KEY  # the `pixsim` CLI's credential in tests
METRICS = InMemoryMetricReader()  # the process's metrics, as the tests' MeterProvider reads them
init_metrics(reader=METRICS)
#: The process's tracing, set up before any app exists so it is the global provider and the one httpx is
#: instrumented with; `pipeline` apps record into SPANS (apps built without a provider record nothing).
SPANS = InMemorySpanExporter()
TRACER_PROVIDER = init_telemetry("pixsim-tests", processor=SimpleSpanProcessor(SPANS))


# -- the outside world stays outside: only loopback connections are allowed in tests ------------
_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address):  # type: ignore[no-untyped-def]
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
        raise RuntimeError(f"tests may not reach {host}: fake the outside world instead")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


@dataclass
class Servers:
    #: As the `admin` NATS user (credentials in the URL): for the tests' own reads and publishes.
    nats_url: str
    mongo_url: str
    #: Every NATS user's password; None for a server without authorization (an external NATS_URL alone).
    nats_credentials: BusCredentials | None = None

    @property
    def service_nats_url(self) -> str:
        """The URL the services get: no credentials in it, each finds its own password."""
        return without_credentials(self.nats_url)

    def nats_options(self, user: str) -> dict[str, str]:
        """`nats.connect(servers.service_nats_url, **servers.nats_options(user))` connects as `user`."""
        return self.nats_credentials.connect_options(user) if self.nats_credentials else {}


def _local_nats() -> tuple[local_servers.LocalServer, Servers]:
    server = local_servers.start_nats()
    return server, Servers(server.url_as("admin"), "", server.credentials)


def docker_available() -> bool:
    """A Docker engine answers (never on the development machines; maybe on yours)."""
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means no engine
        return False


def _container_servers(request: pytest.FixtureRequest, tmp: Path) -> Servers:
    """A real mongod and nats-server (with PixSim's authorization) through testcontainers."""
    from testcontainers.community.mongodb import MongoDbContainer
    from testcontainers.core.container import DockerContainer

    mongo = MongoDbContainer("mongo:7")
    mongo.start()
    request.addfinalizer(mongo.stop)
    credentials = BusCredentials.ensure(tmp / "credentials")
    (tmp / "nats.conf").write_text(server_authorization(credentials.password))
    nats_c = (
        DockerContainer("nats:2.10")
        .with_volume_mapping(str(tmp), "/etc/pixsim", "ro")
        .with_command("-js -c /etc/pixsim/nats.conf")
        .with_exposed_ports(4222)
    )
    nats_c.start()
    request.addfinalizer(nats_c.stop)
    url = f"nats://{nats_c.get_container_host_ip()}:{nats_c.get_exposed_port(4222)}"
    return Servers(credentials.url(url, "admin"), mongo.get_connection_url(), credentials)


def _external_nats(url: str) -> Servers:
    """NATS_URL from the environment. With PIXSIM_NATS_CREDENTIALS_DIR (the server's authorization rendered
    by `python -m pixsim_runtime.bus_auth server-conf DIR`), the services use their own users and the tests
    `admin`; without it everything connects anonymously, so the server must allow that (tests/bus and
    `fresh_servers` always start a nats-server of their own, with authorization)."""
    directory = os.environ.get("PIXSIM_NATS_CREDENTIALS_DIR")
    if not directory:
        return Servers(url, "")
    credentials = BusCredentials.load(directory)
    return Servers(credentials.url(url, "admin"), "", credentials)


@pytest.fixture(scope="session")
def servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """NATS_URL / MONGO_URL when set; else real containers where a Docker engine runs (opt out with
    PIXSIM_TEST_CONTAINERS=0); else a local nats-server and nx-27017 on free loopback ports."""
    wants_containers = os.environ.get("PIXSIM_TEST_CONTAINERS", "auto") != "0"
    if (
        not os.environ.get("NATS_URL")
        and not os.environ.get("MONGO_URL")
        and wants_containers
        and docker_available()
    ):
        yield _container_servers(request, tmp_path_factory.mktemp("nats"))
        return
    started = []
    if url := os.environ.get("NATS_URL"):
        found = _external_nats(url)
    else:
        server, found = _local_nats()
        started.append(server)
    found.mongo_url = os.environ.get("MONGO_URL", "")
    if not found.mongo_url:
        started.append(local_servers.start_mongo())
        found.mongo_url = started[-1].url
    yield found
    for server in started:
        server.stop()


@contextmanager
def own_servers() -> Iterator[Servers]:
    """A NATS (authorization on) and a MongoDB wire server of the caller's own, stopped on exit."""
    nats, found = _local_nats()
    mongo = local_servers.start_mongo()
    found.mongo_url = mongo.url
    try:
        yield found
    finally:
        nats.stop()
        mongo.stop()


@pytest.fixture
def fresh_servers() -> Iterator[Servers]:
    """A NATS and Mongo of this test's own, for pipelines that must not share durable consumers."""
    with own_servers() as found:
        yield found


@pytest.fixture(scope="session")
def sim_fake() -> Iterator[Any]:
    """The sim provider's fake remote API; `.requests` records what the adapter sent."""
    fake = load_fake(PROVIDERS / "sim")(latency=0.6)
    os.environ["PIXSIM_SIM_BASE_URL"] = fake.start("127.0.0.1", 0)
    allow_in_env(fake.url)  # PIXSIM_FETCH_ALLOW_HOSTS: the dispatcher may fetch sources the fake serves
    yield fake
    fake.stop()


#: Where the tests' services keep uploads and archived results (never the repository's .pixsim/).
STORAGE_DIR = tempfile.mkdtemp(prefix="pixsim-test-storage-")


def service_settings(servers: Servers, db: str, providers_dir: Path = PROVIDERS, **extra) -> dict:
    """Settings any service can be built from: each connects to NATS as its own user."""
    credentials = servers.nats_credentials
    nats = {"NATS_URL": servers.service_nats_url}
    if credentials is not None:
        nats["PIXSIM_NATS_CREDENTIALS_DIR"] = str(credentials.directory)
    return {
        **nats,
        "PIXSIM_STORAGE_URL": f"file://{STORAGE_DIR}/{db}",
        "PIXSIM_WEBHOOK_RETRY": 0.1,
        "PIXSIM_WEBHOOK_SUBSCRIPTION_CACHE": 0.5,
        "MONGO_URL": servers.mongo_url,
        "PIXSIM_MONGO_DB": db,
        "PIXSIM_PROVIDERS_DIR": str(providers_dir),
        "PIXSIM_POLL_MIN_INTERVAL": 0.1,
        "PIXSIM_POLL_MAX_INTERVAL": 0.3,
        "PIXSIM_RETRY_BACKOFF": 0.1,
        "PIXSIM_MAX_ATTEMPTS": 3,
        "PIXSIM_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        # Events for generations nobody asked for are dead-lettered after 3 s here, not 2 min, so the
        # bus tests see them quickly; tests of lagging consumers set it back.
        "PIXSIM_ORPHAN_EVENT_WAIT": 3,
        **extra,
    }


def build_apps(
    settings: dict,
    tracer_provider: TracerProvider,
    providers_dir: Path = PROVIDERS,
    roles: tuple[str, ...] = ("gateway", "dispatcher", "poller", "billing"),
) -> list:
    """The service apps, each built by its own composition root from explicit settings."""
    from pixsim_billing.app import BillingSettings
    from pixsim_billing.app import create_app as billing
    from pixsim_dispatcher.app import DispatcherSettings
    from pixsim_dispatcher.app import create_app as dispatcher
    from pixsim_gateway.app import GatewaySettings
    from pixsim_gateway.app import create_app as gateway
    from pixsim_poller.app import PollerSettings
    from pixsim_poller.app import create_app as poller

    factories = {
        "gateway": (gateway, GatewaySettings),
        "dispatcher": (dispatcher, DispatcherSettings),
        "poller": (poller, PollerSettings),
        "billing": (billing, BillingSettings),
    }
    apps = []
    for role in roles:
        create, settings_cls = factories[role]
        registry = discover(providers_dir, include_entry_points=False)
        apps.append(create(settings_cls(**settings), tracer_provider=tracer_provider, registry=registry))
    return apps


@dataclass
class Pipeline:
    gateway_url: str
    api: httpx.AsyncClient
    servers: Servers
    db_name: str
    spans: InMemorySpanExporter
    tracer_provider: TracerProvider
    fake: Any
    metrics: InMemoryMetricReader


@pytest.fixture(scope="session")
async def pipeline(servers: Servers, sim_fake: Any) -> AsyncIterator[Pipeline]:
    settings = service_settings(servers, db="pixsim_tests")
    async with serve(*build_apps(settings, TRACER_PROVIDER)) as served, api_client(served[0].url) as api:
        yield Pipeline(served[0].url, api, servers, "pixsim_tests", SPANS, TRACER_PROVIDER, sim_fake, METRICS)
