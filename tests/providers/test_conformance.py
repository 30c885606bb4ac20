"""Every provider folder that discovery finds, and the example third-party package, passes the SDK's
conformance suite. The cases come from discovery, so a new folder is covered with no edit here."""

from __future__ import annotations

from pathlib import Path

import pytest
from pixsim_provider_sdk import discover
from pixsim_provider_sdk.testing.cases import load_folder_provider
from pixsim_provider_sdk.testing.conformance import ProviderConformance, case_for_folder

REPO = Path(__file__).resolve().parents[2]
PROVIDERS = REPO / "providers"
#: The example package's import directory has the same layout as a provider folder.
EXAMPLE = REPO / "examples" / "pixsim-provider-echo" / "src" / "pixsim_provider_echo"


def provider_folders() -> list[Path]:
    """The folders discovery loads (enabled providers only), in id order."""
    return [Path(item.origin) for item in discover(PROVIDERS, include_entry_points=False, only=None)]


@pytest.fixture(params=[*provider_folders(), EXAMPLE], ids=lambda folder: folder.name)
async def conformance_case(request):
    async with case_for_folder(request.param) as case:
        yield case


class TestConformance(ProviderConformance):
    """The whole suite, once per provider folder."""


def test_every_enabled_provider_folder_is_a_case():
    """Nothing slips through: each folder with a manifest runs the suite above unless it is disabled."""
    folders = [
        f for f in PROVIDERS.iterdir() if (f / "manifest.py").exists() and not f.name.startswith(("_", "."))
    ]
    enabled = {f for f in folders if load_folder_provider(f).manifest.enabled}
    assert set(provider_folders()) == enabled and PROVIDERS / "sim" in enabled
