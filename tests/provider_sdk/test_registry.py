"""Discovery: folders and entry points, disabled plugins, duplicates and broken manifests."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from conftest import PROVIDERS
from pixsim_provider_sdk import ProviderLoadError, ProviderNotFoundError, discover, validate_params


def _copy_sim(root: Path, folder: str, provider_id: str, extra: str = "") -> None:
    shutil.copytree(PROVIDERS / "sim", root / folder, ignore=shutil.ignore_patterns("__pycache__", "test_*"))
    manifest = root / folder / "manifest.py"
    manifest.write_text(manifest.read_text().replace('id="sim"', f'id="{provider_id}"') + extra)


def test_discovers_folders_and_calls_on_register(tmp_path):
    _copy_sim(tmp_path, "alpha", "alpha", textwrap.dedent("""
        registered = []
        def on_register():
            registered.append(True)
    """))
    (tmp_path / "_template").mkdir()  # skipped: starts with an underscore
    registry = discover(tmp_path, include_entry_points=False)
    assert registry.ids() == ["alpha"]
    assert registry.get("alpha").provider_id == "alpha"
    import sys
    module = next(m for name, m in sys.modules.items() if name.endswith(".alpha.manifest"))
    assert module.registered == [True]
    with pytest.raises(ProviderNotFoundError, match="alpha"):
        registry.get("beta")


def test_disabled_provider_is_skipped(tmp_path):
    _copy_sim(tmp_path, "off", "off")
    manifest = tmp_path / "off" / "manifest.py"
    manifest.write_text(manifest.read_text().replace("enabled=True", "enabled=False"))
    assert discover(tmp_path, include_entry_points=False).ids() == []


def test_duplicate_id_names_both_folders(tmp_path):
    _copy_sim(tmp_path, "one", "same")
    _copy_sim(tmp_path, "two", "same")
    with pytest.raises(ProviderLoadError, match=r"duplicate provider id 'same'.*two.*one"):
        discover(tmp_path, include_entry_points=False)


def test_broken_manifest_names_the_folder(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.py").write_text("manifest = 42\nprovider = None\n")
    with pytest.raises(ProviderLoadError, match="broken"):
        discover(tmp_path, include_entry_points=False)
    (tmp_path / "broken").rename(tmp_path / "cracked")  # a new folder: modules are cached per process
    (tmp_path / "cracked" / "manifest.py").write_text("import nothing_here\n")
    with pytest.raises(ProviderLoadError, match="cracked.*cannot import"):
        discover(tmp_path, include_entry_points=False)


def test_url_detection_prefers_the_most_specific_domain():
    registry = discover(PROVIDERS, include_entry_points=False)
    assert registry.detect("https://sim.pixsim.local/video/1").id == "sim"
    assert registry.detect("https://cdn.sim.pixsim.local/x.mp4").id == "sim"
    assert registry.detect("https://notsim.pixsim.local.evil.com/") is None
    assert registry.detect("not a url") is None


def test_parameter_validation_messages():
    spec = {"parameters": [{"name": "prompt", "type": "string", "required": True},
                           {"name": "duration", "type": "integer", "min": 1, "max": 10},
                           {"name": "quality", "type": "string", "enum": ["720p", "1080p"]}]}
    assert validate_params(spec, {"prompt": "x", "duration": 5, "quality": "720p"}) == []
    problems = validate_params(spec, {"duration": True, "quality": "4k", "extra": 1})
    text = " | ".join(problems)
    assert "'extra'" in text and "'prompt' is required" in text and "integer" in text and "4k" in text
