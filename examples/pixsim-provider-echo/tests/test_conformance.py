"""The SDK's conformance suite against this package's own fake: the whole test suite of a third-party
provider can be this short. Run it with the package installed: `pytest tests`."""

import pytest
from pixsim_provider_sdk.testing.conformance import ProviderConformance, case_for_package


@pytest.fixture
async def conformance_case():
    async with case_for_package("pixsim_provider_echo.manifest") as case:
        yield case


class TestEchoConformance(ProviderConformance):
    """Manifest, parameter specs, every status, every error class, timeouts, secrets, temp files."""
