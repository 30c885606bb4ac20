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
    shutil.copytree(PROVIDERS / "sim", providers / "lumen", ignore=shutil.ignore_patterns("__pycache__", "test_*"))
    manifest = providers / "lumen" / "manifest.py"
    text = manifest.read_text()
    assert 'id="sim"' in text
    manifest.write_text(text.replace('id="sim"', 'id="lumen"').replace('domains=["sim.pixsim.local"]',
                                                                      'domains=["lumen.example"]'))
    fake = load_fake(providers / "lumen")(latency=0.3)
    monkeypatch.setenv("PIXSIM_LUMEN_BASE_URL", fake.start("127.0.0.1", 0))
    settings = service_settings(fresh_servers, db="plugin", providers_dir=providers)
    try:
        async with serve(*build_apps(settings, TracerProvider(), providers_dir=providers)) as served:
            async with api_client(served[0].url) as api:
                listed = (await api.get("/api/v1/providers")).json()["items"]
                assert [p["id"] for p in listed] == ["lumen"]
                detected = await api.get("/api/v1/providers/detect", params={"url": "https://app.lumen.example/v/1"})
                assert detected.json()["id"] == "lumen"
                resp = await api.post("/api/v1/generations", json={
                    "provider_id": "lumen", "operation_type": "text_to_video",
                    "params": {"prompt": "a copied provider", "duration": 2}})
                assert resp.status_code == 202, resp.text
                done = await wait_for(api, resp.json()["id"])
                assert done["status"] == "completed" and done["account_id"] == "system-lumen"
                assert done["result"]["video_url"].startswith(os.environ["PIXSIM_LUMEN_BASE_URL"])
                entries = await wait_ledger(fresh_servers.mongo_url, "plugin", done["id"], {"reserved", "charged"})
                assert {e["provider_id"] for e in entries} == {"lumen"}
        assert any(r[1] == "/v1/jobs" for r in fake.requests)
    finally:
        fake.stop()
