"""The container image's contract, checked without a Docker engine (there is none here).

What can be checked is checked: the Dockerfile lints clean (hadolint) and says what the image must
be; the entrypoint's roles are exactly the services' console scripts; .dockerignore lets in what the
Dockerfile copies and nothing test-only; and the JetStream set-up the image runs as a Kubernetes Job
really creates the streams and consumers, against a real nats-server.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pixsim_runtime import local_servers

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"pixsim_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


entrypoint = _load(ROOT / "deploy" / "image" / "entrypoint.py")
setup = _load(ROOT / "deploy" / "image" / "jetstream_setup.py")


def service_scripts() -> dict[str, str]:
    """Console scripts that run a service (`pixsim_<x>.__main__:main`), from services/*/pyproject.toml."""
    found = {}
    for pyproject in sorted(ROOT.glob("services/*/pyproject.toml")):
        for name, target in tomllib.loads(pyproject.read_text())["project"].get("scripts", {}).items():
            if target.endswith(".__main__:main"):
                found[name] = pyproject.parent.name
    return found


# -- the entrypoint ----------------------------------------------------------------------------------
def test_roles_are_exactly_the_services_console_scripts() -> None:
    scripts = service_scripts()
    assert {f"pixsim-{role}" for role in entrypoint.ROLES} == set(scripts)
    for role in entrypoint.ROLES:
        assert scripts[entrypoint.command_for(role)[0]] == role  # pixsim-gateway lives in services/gateway


def test_the_entrypoint_execs_the_role_from_the_argument_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    monkeypatch.setattr(entrypoint.os, "execvp", lambda file, args: calls.append(args))
    assert entrypoint.main(["poller"]) is None
    monkeypatch.setenv("PIXSIM_ROLE", "billing")
    assert entrypoint.main([]) is None
    assert calls == [["pixsim-poller"], ["pixsim-billing"]]


def test_the_entrypoint_refuses_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIXSIM_ROLE", raising=False)
    run = [sys.executable, str(ROOT / "deploy" / "image" / "entrypoint.py")]
    for args in ([], ["pixsim"], ["gateway", "extra"], ["sh"]):
        done = subprocess.run(run + args, capture_output=True, text=True, check=False, timeout=30)
        assert done.returncode == 64, args
        assert "gateway|dispatcher|poller|billing" in done.stderr


# -- the Dockerfile ----------------------------------------------------------------------------------
def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dockerfile_builds_what_the_issue_asks_for() -> None:
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert len(froms) >= 3  # uv, build and runtime stages
    for image in froms:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "$" not in image, f"{image} is not pinned by tag"
    python_minor = ".".join(sys.version.split(".")[:2])
    assert all(f"python:{python_minor}." in image for image in froms if image.startswith("python:"))
    assert re.search(r"uv sync --frozen --all-packages --no-dev", DOCKERFILE)
    runtime = DOCKERFILE.split(" AS runtime", 1)[1]
    assert re.search(r"^WORKDIR /app$", runtime, re.MULTILINE) and "PIXSIM_PROVIDERS_DIR=providers" in runtime
    assert re.search(r"^COPY providers ./providers$", runtime, re.MULTILINE)
    user = re.findall(r"^USER\s+(\S+)", runtime, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert '"/app/deploy/image/entrypoint.py"' in runtime and re.search(
        r"^COPY deploy/image ", runtime, re.MULTILINE
    )


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate, pattern = pattern.startswith("!"), pattern.lstrip("!").rstrip("/")
        regex = (
            re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        )
        if any(re.fullmatch(regex, c) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_sends_what_the_image_needs_and_nothing_test_only() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        src
        for line in re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE, re.MULTILINE)
        for src in line.split()[:-1]
    ]
    assert sources
    for src in sources:
        files = (
            [p for p in ROOT.glob(f"{src}/**/*") if p.is_file()] if (ROOT / src).is_dir() else [ROOT / src]
        )
        sent = [f for f in files if not _dockerignored(str(f.relative_to(ROOT)), patterns)]
        assert sent, f"{src} is copied but .dockerignore sends none of it"
    for needed in (
        "uv.lock",
        "providers/sim/adapter.py",
        "providers/sim/fake_api.py",
        "libs/runtime/pixsim_runtime/service.py",
        "deploy/image/jetstream_setup.py",
    ):
        assert not _dockerignored(needed, patterns), needed
    for unwanted in (
        "providers/sim/test_sim.py",
        "tests/conftest.py",
        ".venv/bin/python",
        "deploy/k8s/base/nats.yaml",
        "libs/runtime/pixsim_runtime/__pycache__/service.cpython-311.pyc",
        ".pixsim/credentials.key",
    ):
        assert _dockerignored(unwanted, patterns), unwanted


# -- the JetStream set-up Job ------------------------------------------------------------------------
def test_the_plan_holds_every_durable_consumer_the_services_bind() -> None:
    plan = setup.consumer_plan()
    by_name = {c.name: c for c in plan}
    assert {
        "dispatcher",
        "poller",
        "poller-cancels",
        "billing",
        "gateway-generations",
        "gateway-credits",
    } <= set(by_name)
    assert len(by_name) == len(plan), "two services share a durable name"
    assert by_name["dispatcher"].config.filter_subject == "pixsim.generations.*.requested"
    assert by_name["billing"].stream == "PIXSIM_CREDITS"


@pytest.fixture
def nats_server():
    server = local_servers.start_nats()  # with authorization on, as everywhere
    yield server
    server.stop()


async def test_the_job_creates_streams_and_consumers_idempotently(nats_server) -> None:
    plan = setup.consumer_plan()
    url, auth = nats_server.url, nats_server.credentials.connect_options("setup")
    before = await setup.missing(url, 1, plan, **auth)
    assert "stream PIXSIM_GENERATIONS" in before and "consumer PIXSIM_GENERATIONS/dispatcher" in before
    assert not await setup.wait(url, 1, plan, timeout=0, **auth)
    await setup.declare(url, 1, plan, **auth)
    await setup.declare(
        url, 1, plan, **auth
    )  # a second run (a re-applied Job) changes nothing and does not fail
    assert await setup.missing(url, 1, plan, **auth) == []
    assert await setup.wait(url, 1, plan, timeout=5, **auth)
    # an init container waits as its own service, which may read only its own consumers
    for service in ("gateway", "dispatcher", "poller", "billing"):
        own = [c for c in plan if c.service == service]
        assert await setup.wait(url, 1, own, timeout=5, **nats_server.credentials.connect_options(service))

    import nats

    nc = await nats.connect(nats_server.url_as("admin"))
    try:
        info = await nc.jetstream().consumer_info("PIXSIM_GENERATIONS", "poller")
        assert info.config.filter_subject == "pixsim.generations.*.submitted"
        assert str(getattr(info.config.ack_policy, "value", info.config.ack_policy)) == "explicit"
        assert 0 < info.config.max_deliver < 20_000  # a finite backstop
    finally:
        await nc.close()


async def test_the_readme_publishing_example_is_deduplicated(nats_server) -> None:
    example = _load(ROOT / "docs" / "examples" / "publish_generation_requested.py")
    nats_url = nats_server.url
    await setup.declare(
        nats_url, 1, [], **nats_server.credentials.connect_options("setup")
    )  # as the Job does
    password = nats_server.credentials.password("upstream")
    assert await example.publish(nats_url, "order-4711", password) is False
    assert await example.publish(nats_url, "order-4711", password) is True  # a retried publish is dropped
    assert await example.publish(nats_url, "order-4712", password) is False

    import nats

    nc = await nats.connect(nats_server.url_as("admin"))
    try:
        info = await nc.jetstream().stream_info("PIXSIM_GENERATIONS")
        assert info.state.messages == 2
    finally:
        await nc.close()
