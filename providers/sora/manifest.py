"""Sora: OpenAI's video models (sora-2, sora-2-pro) through the Videos API, `/v1/videos`.

Accounts are an OpenAI API key or a browser session's bearer token (README.md, "Accounts"). Credits are
cents of OpenAI usage, billed per second of video by model and size (pricing.py).
"""

from pixsim_provider_sdk import ProviderKind, ProviderManifest

from .adapter import SoraProvider

manifest = ProviderManifest(
    id="sora",
    name="Sora",
    version="1.0.0",
    description="OpenAI Sora 2 text-to-video and image-to-video through the Videos API",
    author="PixSim",
    kind=ProviderKind.VIDEO,
    enabled=True,
    requires_credentials=True,
    domains=["sora.chatgpt.com", "sora.com", "chatgpt.com"],
    credit_types=["usage"],
    status_mapping_notes=(
        "queued=pending (progress 0), in_progress=processing (progress/100), completed=completed (result: "
        "the authenticated GET /v1/videos/{id}/content, until expires_at; after it: failed, "
        "provider_result_expired), failed with error.code moderation_blocked/sentinel_block=filtered "
        "(content_output_moderated), failed with any other code=failed (that code). "
        "Refused at submit by moderation (400 sentinel_block/moderation_blocked): filtered, content_input_moderated."
    ),
)

provider = SoraProvider()
