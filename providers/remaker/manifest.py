"""Remaker.ai: AI image editing (prompt-based edits and mask inpainting) through the website's internal API.

Accounts are browser sessions (a JWT captured by the extension); jobs are multipart uploads of local
files, polled until Remaker's CDN has the result. See README.md.
"""

from pixsim_provider_sdk import ProviderKind, ProviderManifest

from .adapter import RemakerProvider

manifest = ProviderManifest(
    id="remaker",
    name="Remaker.ai",
    version="1.0.0",
    description="Remaker.ai image editing: prompt-editor (image_to_image) and photo-editor inpainting "
    "(image_edit), replaying the web app's internal API",
    author="PixSim",
    kind=ProviderKind.IMAGE,
    enabled=True,
    requires_credentials=True,
    domains=["remaker.ai", "api.remaker.ai"],
    credit_types=["web"],
    status_mapping_notes=(
        "get-job `code`: 100002=pending (queued); 300006 (photo-editor) and 300013 (prompt-editor)=processing; "
        "100000 with result.output[0]=completed (image_url), 100000 without output=processing; "
        "400000=filtered (content_output_rejected); 300002=job not found (JobNotFoundError); "
        "any other code=failed (provider_generic, message.en). HTTP 401/403=auth error, 429=rate limit, "
        "5xx=unavailable. Prompt-editor job ids are prefixed 'pe:'."
    ),
)

provider = RemakerProvider()
