"""What PixSim's registry loads through the `pixsim.providers` entry point: `manifest` and `provider`."""

from pixsim_provider_sdk import ProviderKind, ProviderManifest

from .adapter import EchoProvider

manifest = ProviderManifest(
    id="echo",
    name="Echo Images",
    version="0.1.0",
    description="Example third-party provider: text to image, and image to image that echoes its source",
    author="PixSim examples",
    kind=ProviderKind.IMAGE,
    enabled=True,
    requires_credentials=True,  # every job runs on a user's API key
    domains=["echo.example"],
    credit_types=["echo"],
    status_mapping_notes=(
        "WAITING=pending, WORKING=processing, DONE=completed, ERROR=failed, "
        "BLOCKED=filtered, CANCELED=cancelled"
    ),
)

provider = EchoProvider()
