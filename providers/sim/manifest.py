"""The Simulator: PixSim's built-in provider, backed by a fake remote API (fake_api.py).

It needs no credentials (jobs run on the system account) and lets a caller choose how a job ends
(`outcome`) and how long it takes (`latency`), so every path of the pipeline can be exercised.
"""

from pixsim_provider_sdk import ProviderKind, ProviderManifest

from .adapter import SimProvider

manifest = ProviderManifest(
    id="sim",
    name="Simulator",
    version="1.0.0",
    description="Simulated video and image generation against a local fake API, for tests and demos",
    author="PixSim",
    kind=ProviderKind.BOTH,
    enabled=True,
    requires_credentials=False,
    domains=["sim.pixsim.local"],
    credit_types=["sim"],
    status_mapping_notes=(
        "queued=pending, running=processing, succeeded=completed, failed=failed, "
        "moderated=filtered, cancelled=cancelled"
    ),
)

provider = SimProvider()
