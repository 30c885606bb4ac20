"""The founding promise: dropping a provider folder into providers/ is the only change needed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import PROVIDERS, build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_provider_sdk.testing.fake_http import load_fake
from pixsim_runtime.inprocess import serve
from support import api_client, wait_for, wait_ledger

pytestmark = pytest.mark.system


async def test_a_copied_provider_folder_runs_with_no_code_change(tmp_path: Path, fresh_servers, monkeypatch):
    providers = tmp_path / "providers"
    shutil.copytree(
        PROVIDERS / "sim", providers / "lumen", ignore=shutil.ignore_patterns("__pycache__", "test_*")
    )
    manifest = providers / "lumen" / "manifest.py"
    text = manifest.read_text()
    assert 'id="sim"' in text
    manifest.write_text(
        text.replace('id="sim"', 'id="lumen"').replace(
            'domains=["sim.pixsim.local"]', 'domains=["lumen.example"]'
        )
    )
    fake = load_fake(providers / "lumen")(latency=0.3)
    monkeypatch.setenv("PIXSIM_LUMEN_BASE_URL", fake.start("127.0.0.1", 0))
    settings = service_settings(fresh_servers, db="plugin", providers_dir=providers)
    try:
        async with (
            serve(*build_apps(settings, TracerProvider(), providers_dir=providers)) as served,
            api_client(served[0].url) as api,
        ):
            listed = (await api.get("/api/v1/providers")).json()["items"]
            assert [p["id"] for p in listed] == ["lumen"]
            detected = await api.get(
                "/api/v1/providers/detect", params={"url": "https://app.lumen.example/v/1"}
            )
            assert detected.json()["id"] == "lumen"
            resp = await api.post(
                "/api/v1/generations",
                json={
                    "provider_id": "lumen",
                    "operation_type": "text_to_video",
                    "params": {"prompt": "a copied provider", "duration": 2},
                },
            )
            assert resp.status_code == 202, resp.text
            done = await wait_for(api, resp.json()["id"])
            assert done["status"] == "completed" and done["account_id"] == "system-lumen"
            assert done["result"]["video_url"].startswith(os.environ["PIXSIM_LUMEN_BASE_URL"])
            entries = await wait_ledger(
                fresh_servers.mongo_url, "plugin", done["id"], {"reserved", "charged"}
            )
            assert {e["provider_id"] for e in entries} == {"lumen"}
        assert any(r[1] == "/v1/jobs" for r in fake.requests)
    finally:
        fake.stop()


async def test_a_provider_that_fails_to_register_is_disabled_and_everything_else_runs(
    tmp_path: Path, fresh_servers, sim_fake
):
    providers = tmp_path / "providers"
    shutil.copytree(
        PROVIDERS / "sim", providers / "sim", ignore=shutil.ignore_patterns("__pycache__", "test_*")
    )
    shutil.copytree(
        PROVIDERS / "sim", providers / "flaky", ignore=shutil.ignore_patterns("__pycache__", "test_*")
    )
    manifest = providers / "flaky" / "manifest.py"
    manifest.write_text(
        manifest.read_text()
        .replace('id="sim"', 'id="flaky"')
        .replace('domains=["sim.pixsim.local"]', 'domains=["flaky.example"]')
        + "\n\ndef on_register():\n    import pixsim_flaky_sdk_that_is_not_installed  # noqa: F401\n"
    )
    (providers / "cracked").mkdir()
    (providers / "cracked" / "manifest.py").write_text("raise RuntimeError('half-written plugin')\n")
    settings = service_settings(fresh_servers, db="disabled", providers_dir=providers)
    async with (
        serve(*build_apps(settings, TracerProvider(), providers_dir=providers)) as served,
        api_client(served[0].url) as api,
    ):
        listed = (await api.get("/api/v1/providers")).json()
        assert [p["id"] for p in listed["items"]] == ["sim"]
        disabled = {d["id"]: d for d in listed["disabled"]}
        assert set(disabled) == {"flaky", "cracked"}
        assert disabled["flaky"]["origin"] == str(providers / "flaky")
        assert "on_register() raised ModuleNotFoundError" in disabled["flaky"]["reason"]
        assert "half-written plugin" in disabled["cracked"]["reason"]
        missing = await api.get("/api/v1/providers/flaky")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "provider_disabled"
        refused = await api.post(
            "/api/v1/generations",
            json={"provider_id": "flaky", "operation_type": "text_to_video", "params": {"prompt": "x"}},
        )
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "provider_not_found"
        resp = await api.post(
            "/api/v1/generations",
            json={
                "provider_id": "sim",
                "operation_type": "text_to_video",
                "params": {"prompt": "still works", "duration": 1},
            },
        )
        assert resp.status_code == 202, resp.text
        assert (await wait_for(api, resp.json()["id"]))["status"] == "completed"
        for app in served[1:]:  # dispatcher, poller and billing are up and ready too
            assert (await api.get(f"{app.url}/readyz")).status_code == 200
