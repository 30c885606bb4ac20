"""A third-party provider package, pip-installed into a directory of its own (never the shared venv), is
found through its `pixsim.providers` entry point, passes the conformance suite, and runs generations
through the whole pipeline."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from conftest import service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_provider_sdk import ENTRY_POINT_GROUP, discover
from pixsim_provider_sdk.safe_fetch import ALLOW_HOSTS_ENV, host_port
from pixsim_provider_sdk.testing.conformance import ProviderConformance, case_for_package
from pixsim_provider_sdk.testing.media import PNG_SIGNATURE
from pixsim_runtime.inprocess import serve
from support import api_client, create, wait_for, wait_ledger

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pixsim-provider-echo"
PACKAGE = "pixsim_provider_echo"
PROVIDER_ID = "echo"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory):
    """The example built by hatchling (offline, from uv's cache) and installed into a private target dir,
    which is on sys.path for this module's tests only."""
    # `uv run` names its own binary in $UV; `make` runs uv as `python3 -m uv`, which may not be on PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is needed to build the example package"
    target = tmp_path_factory.mktemp("third-party-site")
    command = [
        uv,
        "pip",
        "install",
        "--offline",
        "--no-deps",
        "--python",
        sys.executable,
        "--target",
        str(target),
        str(EXAMPLE),
    ]
    built = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, f"{' '.join(command)} failed:\n{built.stderr}"
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def _entry_point():
    (ep,) = entry_points(group=ENTRY_POINT_GROUP, name=PROVIDER_ID)
    return ep


def test_discovery_finds_the_installed_package_through_its_entry_point(installed: Path):
    registry = discover(None, include_entry_points=True)
    assert PROVIDER_ID in registry
    (item,) = [i for i in registry if i.manifest.id == PROVIDER_ID]
    assert item.origin == f"package pixsim-provider-echo (entry point {PROVIDER_ID})"
    module = sys.modules[type(item.provider).__module__]
    assert installed in Path(module.__file__).parents, "loaded from the install target, not the sources"
    for source in (EXAMPLE / "src" / PACKAGE).glob("*.py"):  # the build is of the current sources
        assert (installed / PACKAGE / source.name).read_bytes() == source.read_bytes(), source.name
    # Installed packages are opt-in: the built-in folder discovery never sees them.
    assert PROVIDER_ID not in discover(REPO / "providers", include_entry_points=False)


@pytest.fixture
async def conformance_case(installed: Path):
    async with case_for_package(_entry_point().value) as case:
        yield case


class TestInstalledPackageConformance(ProviderConformance):
    """The SDK's suite against the installed package and the fake it ships."""


def test_the_authors_own_test_suite_passes_in_a_clean_pytest_run(installed: Path):
    """The example's tests/ (its author's whole suite) under its own pytest config, not this repo's."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"],
        check=False,
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    checks = [name for name in dir(ProviderConformance) if name.startswith("test_")]
    assert run.stdout.splitlines()[-1].startswith(f"{len(checks)} passed"), run.stdout[-2000:]


def _apps(settings: dict, tracer_provider: TracerProvider) -> list:
    """The four services as tests/conftest.py's build_apps builds them, but each with a registry that
    loads installed packages (the only one allowed here is the example)."""
    from pixsim_billing.app import BillingSettings
    from pixsim_billing.app import create_app as billing
    from pixsim_dispatcher.app import DispatcherSettings
    from pixsim_dispatcher.app import create_app as dispatcher
    from pixsim_gateway.app import GatewaySettings
    from pixsim_gateway.app import create_app as gateway
    from pixsim_poller.app import PollerSettings
    from pixsim_poller.app import create_app as poller

    factories = [
        (gateway, GatewaySettings),
        (dispatcher, DispatcherSettings),
        (poller, PollerSettings),
        (billing, BillingSettings),
    ]
    return [
        create(
            cls(**settings),
            tracer_provider=tracer_provider,
            registry=discover(None, include_entry_points=True, only=[PROVIDER_ID]),
        )
        for create, cls in factories
    ]


@pytest.mark.system
async def test_generations_run_through_the_pipeline(
    installed: Path, fresh_servers, monkeypatch, tmp_path: Path
):
    fake = importlib.import_module(f"{PACKAGE}.fake_api").create_fake(latency=0.3)
    monkeypatch.setenv("PIXSIM_ECHO_BASE_URL", fake.start("127.0.0.1", 0))
    monkeypatch.setenv(
        ALLOW_HOSTS_ENV, host_port(fake.url), prepend=","
    )  # its results are fetched as sources
    empty = tmp_path / "providers"  # no built-in providers: the installed package is the only one
    empty.mkdir()
    settings = service_settings(fresh_servers, db="third_party", providers_dir=empty)
    try:
        async with (
            serve(*_apps(settings, TracerProvider())) as served,
            api_client(served[0].url) as api,
        ):
            listed = (await api.get("/api/v1/providers")).json()["items"]
            assert [p["id"] for p in listed] == [PROVIDER_ID]
            resp = await api.post(
                "/api/v1/accounts",
                json={"provider_id": PROVIDER_ID, "raw_data": fake.valid_raw_data(), "credits": {"echo": 10}},
            )
            assert resp.status_code == 201, resp.text
            account_id = resp.json()["id"]

            first = await create(
                api,
                {"prompt": "a lighthouse at dusk", "width": 96, "height": 64},
                provider=PROVIDER_ID,
                operation="text_to_image",
            )
            done = await wait_for(api, first["id"])
            assert done["status"] == "completed" and done["account_id"] == account_id, done
            image = (await api.get(done["result"]["image_url"])).content
            assert image.startswith(PNG_SIGNATURE)
            assert (int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")) == (96, 64)

            # image_to_image: the dispatcher prepares the source file; Echo sends that image back.
            second = await create(
                api,
                {"prompt": "echo it", "image_url": done["result"]["image_url"]},
                provider=PROVIDER_ID,
                operation="image_to_image",
            )
            echoed = await wait_for(api, second["id"])
            assert echoed["status"] == "completed", echoed
            assert (await api.get(echoed["result"]["image_url"])).content == image
            entries = await wait_ledger(
                fresh_servers.mongo_url, "third_party", second["id"], {"reserved", "charged"}
            )
            assert {(e["provider_id"], e["credit_type"]) for e in entries} == {(PROVIDER_ID, "echo")}
        submits = [r for r in fake.requests if r.method == "POST" and r.path == "/api/v2/images"]
        assert len(submits) == 2 and all(r.headers["x-api-key"] == fake.api_keys[0] for r in submits)
    finally:
        fake.stop()
