"""`PIXSIM_<ID>_RATE_LIMITS` overrides a manifest's call rates field by field, and a bad value stops
start-up with a message that names the variable."""

from __future__ import annotations

import pytest
from conftest import PROVIDERS
from pixsim_provider_sdk import discover
from pixsim_runtime.rate_limits import call_rates

SIM = discover(PROVIDERS, include_entry_points=False, only=["sim"]).get("sim")


def test_the_environment_overrides_the_manifest_field_by_field():
    assert call_rates(SIM, {}) == SIM.manifest.rate_limits
    rates = call_rates(SIM, {"PIXSIM_SIM_RATE_LIMITS": '{"status_per_s": 2.5, "burst": 3}'})
    assert (rates.status_per_s, rates.burst, rates.submit_per_s) == (
        2.5,
        3,
        SIM.manifest.rate_limits.submit_per_s,
    )


@pytest.mark.parametrize("raw", ['{"status_per_s": -1}', '{"per_hour": 3}', "fast", '{"burst": "many"}'])
def test_a_bad_override_names_the_variable(raw):
    with pytest.raises(ValueError, match="PIXSIM_SIM_RATE_LIMITS"):
        call_rates(SIM, {"PIXSIM_SIM_RATE_LIMITS": raw})
