"""The console's browser tests: the whole system on its own NATS and MongoDB with the sim fake, two users
and an admin, and Debian's Chromium driven headless by Playwright for Python.

Chromium comes from Debian (`apt-get install chromium`), never from Playwright's own download (which
needs hosts outside the package registries). It is installed here, once, when a collected browser test
needs it and `/usr/bin/chromium` is missing (CI runs as root, like the development machines); the
browser tests skip, saying why, only when it cannot be installed. PIXSIM_CHROMIUM names another binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, build_apps, own_servers, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_runtime.inprocess import serve
from support import api_client

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # never fetch a browser of Playwright's own
CHROMIUM = os.environ.get("PIXSIM_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "console"
HERE = Path(__file__).parent
_missing: list[str] = []  # why Chromium is not there, once we tried


def _install_chromium() -> str | None:
    """Install Debian's chromium; None when it worked, else why not."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{CHROMIUM} is missing and apt-get cannot run here (not root or no apt): apt-get install chromium"
    print(f"\n{CHROMIUM} is missing: installing Debian's chromium with apt-get (once)...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=1200)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(command)} failed: {exc}"
        if done.returncode != 0:
            return f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}"
    return None if os.access(CHROMIUM, os.X_OK) else f"apt-get installed chromium but {CHROMIUM} is not there"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Here, not in a fixture: the install may take minutes, longer than any test's timeout.
    wanted = any(
        Path(str(item.path)).is_relative_to(HERE) and "browser" in item.fixturenames for item in items
    )
    if wanted and not os.access(CHROMIUM, os.X_OK) and not _missing:
        _missing.append(_install_chromium() or "")


@dataclass
class ConsoleSystem:
    url: str
    keys: dict[str, str]  # user -> API key ("admin" is the bootstrap admin's)
    accounts: dict[str, str]  # user -> the id of an account they own
    api: Any  # the admin's API client
    fake: Any


@pytest.fixture(scope="package")
async def console_system(sim_fake: Any) -> AsyncIterator[ConsoleSystem]:
    from support import ADMIN_KEY

    with own_servers() as servers:
        settings = service_settings(servers, db="console", PIXSIM_SSE_KEEPALIVE=2.0)
        async with serve(*build_apps(settings, TracerProvider())) as served, api_client(served[0].url) as api:
            keys, accounts = {"admin": ADMIN_KEY}, {}
            for user in ("alice", "bob"):
                resp = await api.post("/api/v1/keys", json={"name": f"{user}'s browser", "owner": user})
                assert resp.status_code == 201, resp.text
                keys[user] = resp.json()["token"]
                resp = await api.post(
                    "/api/v1/accounts",
                    json={
                        "provider_id": "sim",
                        "raw_data": sim_fake.valid_raw_data(),
                        "owner_id": user,
                        "email": f"{user}@sim.pixsim.local",
                        "credits": {"sim": 50},
                    },
                )
                assert resp.status_code == 201, resp.text
                accounts[user] = resp.json()["id"]
            yield ConsoleSystem(served[0].url, keys, accounts, api, sim_fake)


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            _missing[0] if _missing and _missing[0] else f"{CHROMIUM} is missing (apt-get install chromium)"
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        await chromium.close()
