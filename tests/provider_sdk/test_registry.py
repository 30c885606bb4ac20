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
    _copy_sim(
        tmp_path,
        "alpha",
        "alpha",
        textwrap.dedent("""
        registered = []
        def on_register():
            registered.append(True)
    """),
    )
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
        discover(tmp_path, include_entry_points=False, strict=True)
    registry = discover(
        tmp_path, include_entry_points=False
    )  # services: the first stays, the second is disabled
    assert registry.ids() == ["same"] and registry.get("same") is not None
    [disabled] = registry.disabled
    assert (
        disabled.id == "same"
        and disabled.origin.endswith("two")
        and "duplicate provider id" in disabled.reason
    )


def test_broken_manifest_names_the_folder(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.py").write_text("manifest = 42\nprovider = None\n")
    with pytest.raises(ProviderLoadError, match="broken"):
        discover(tmp_path, include_entry_points=False, strict=True)
    (tmp_path / "broken").rename(tmp_path / "cracked")  # a new folder: modules are cached per process
    (tmp_path / "cracked" / "manifest.py").write_text("import nothing_here\n")
    with pytest.raises(ProviderLoadError, match="cracked.*cannot import"):
        discover(tmp_path, include_entry_points=False, strict=True)


def test_a_provider_that_fails_to_load_or_register_is_disabled_and_the_others_load(tmp_path, caplog):
    _copy_sim(tmp_path, "good", "good")
    _copy_sim(
        tmp_path, "badhook", "badhook", "\ndef on_register():\n    raise RuntimeError('no licence file')\n"
    )
    (tmp_path / "cracked").mkdir()
    (tmp_path / "cracked" / "manifest.py").write_text("import nothing_here_either\n")
    (tmp_path / "bad-name").mkdir()
    (tmp_path / "bad-name" / "manifest.py").write_text("")
    registry = discover(tmp_path, include_entry_points=False)
    assert registry.ids() == ["good"]
    reasons = {d.id: (d.origin, d.reason) for d in registry.disabled}
    assert set(reasons) == {"badhook", "cracked", "bad-name"}
    assert (
        reasons["badhook"][0].endswith("badhook")
        and "on_register() raised RuntimeError('no licence file')" in reasons["badhook"][1]
    )
    assert (
        "cannot import manifest.py" in reasons["cracked"][1]
        and "nothing_here_either" in reasons["cracked"][1]
    )
    assert str(tmp_path / "cracked") in caplog.text and str(tmp_path / "badhook") in caplog.text


def test_url_detection_prefers_the_most_specific_domain():
    registry = discover(PROVIDERS, include_entry_points=False)
    assert registry.detect("https://sim.pixsim.local/video/1").id == "sim"
    assert registry.detect("https://cdn.sim.pixsim.local/x.mp4").id == "sim"
    assert registry.detect("https://notsim.pixsim.local.evil.com/") is None
    assert registry.detect("not a url") is None


def test_parameter_validation_messages():
    spec = {
        "parameters": [
            {"name": "prompt", "type": "string", "required": True},
            {"name": "duration", "type": "integer", "min": 1, "max": 10},
            {"name": "quality", "type": "string", "enum": ["720p", "1080p"]},
        ]
    }
    assert validate_params(spec, {"prompt": "x", "duration": 5, "quality": "720p"}) == []
    problems = validate_params(spec, {"duration": True, "quality": "4k", "extra": 1})
    text = " | ".join(problems)
    assert "'extra'" in text and "'prompt' is required" in text and "integer" in text and "4k" in text


def test_a_provider_with_a_malformed_parameter_spec_is_disabled_with_its_folder_named(tmp_path):
    folder = tmp_path / "providers" / "sloppy"
    shutil.copytree(PROVIDERS / "sim", folder)
    adapter = folder / "adapter.py"
    text = adapter.read_text()
    assert '"max_length": 2000' in text  # the prompt's bound, turned into a bound that would be ignored
    adapter.write_text(text.replace('"max_length": 2000', '"max": 2000', 1))
    registry = discover(tmp_path / "providers", include_entry_points=False)
    assert registry.ids() == []
    [disabled] = registry.disabled
    assert (
        str(folder) in disabled.reason and "'max' applies to integer or number, not string" in disabled.reason
    )
