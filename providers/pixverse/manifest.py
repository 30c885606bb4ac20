"""Pixverse (pixverse.ai): text/image to video, extend, transitions, fusion, and images.

Auto-discovered from this folder. Accounts come from a captured browser session (WebAPI, `web`
credits) and/or an OpenAPI key (`openapi` credits); see README.md.
"""

from pixsim_provider_sdk import ProviderKind, ProviderManifest

from .adapter import PixverseProvider

manifest = ProviderManifest(
    id="pixverse",
    name="Pixverse",
    version="1.0.0",
    description="Pixverse AI video (t2v, i2v, extend, transition, fusion) and image (t2i, i2i) generation",
    author="PixSim",
    kind=ProviderKind.BOTH,  # video and images (t2i, i2i)
    enabled=True,
    requires_credentials=True,
    domains=["pixverse.ai", "app.pixverse.ai"],
    # web: WebAPI jobs (browser session); openapi: OpenAPI jobs (API key); standard: a pool Pixverse
    # reports for some plans, declared so balances can be recorded, never reserved by this adapter.
    credit_types=["web", "openapi", "standard"],
    status_mapping_notes=(
        "Numeric Pixverse status codes. Videos: 1=completed; 10=completed once the output has a width "
        "and height, else processing (pre-allocated CDN path); 0, 2, 5=processing; -1, 4, 8, 9=failed; "
        "3, 7, 17=filtered (content_render_moderated). Partner models run through fal (grok-imagine, "
        "happyhorse-1.0): 1=completed; 0, 2, 5, 9, 10=processing; 8 (interrupted)=filtered "
        "(content_partner_refused); 3, 7, 17=filtered; -1, 4=failed. Images: 1=completed; 0, 2, 5, "
        "10=processing; 7=filtered; 8, 9=failed. Words: completed/success, processing/pending/queued, "
        "failed, filtered/rejected/interrupted, cancelled. Unknown codes=processing. A completed record "
        "whose URL is still the default.mp4/default.jpg placeholder stays processing."
    ),
)

provider = PixverseProvider()
