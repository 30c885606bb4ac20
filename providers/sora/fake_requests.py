"""The fake Videos API's request side: OpenAI-shaped errors, bearer auth, body parsing and validation.

Standard library only; fake_api.py holds the routes and knobs, fake_video.py the catalogue and a video's
timeline.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from pixsim_provider_sdk import image_info
from pixsim_provider_sdk.testing.fake_http import FakeRequest, FakeResponse, json_response
from pixsim_provider_sdk.testing.multipart import parse_multipart
from pixsim_provider_sdk.tokens import NotAJwt, jwt_claims

from .fake_video import IMAGE_TYPES, MODEL_SIZES, REVOKED_KEY, SECONDS, SNAPSHOTS


def oai_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> FakeResponse:
    """OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json_response(body, status, headers)


def auth_error(token: str | None, api_keys: set[str] | None) -> FakeResponse | None:
    """OpenAI's 401 for a missing or refused bearer token; None when it is accepted. API keys: any
    well-formed key but the revoked one (or only `api_keys`). Browser session tokens are JWTs; the fake
    cannot check OpenAI's signature, only the expiry."""
    if not token:
        return oai_error(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    if token.count(".") == 2 and not token.startswith("sk-"):
        try:
            claims = jwt_claims(token)
        except NotAJwt:
            return oai_error(401, "Invalid authorization header.", code="invalid_api_key")
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp <= time.time():
            return oai_error(
                401,
                "Your authentication token has expired. Please try signing in again.",
                code="token_expired",
            )
        return None
    if (
        not token.startswith("sk-")
        or len(token) < 20
        or token == REVOKED_KEY
        or (api_keys is not None and token not in api_keys)
    ):
        masked = f"{token[:8]}{'*' * max(4, len(token) - 12)}{token[-4:]}"  # as OpenAI shows it
        return oai_error(
            401,
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
    return None


# -- request bodies ---------------------------------------------------------------------------------
def form_fields(req: FakeRequest) -> tuple[dict[str, Any], bytes | None] | FakeResponse:
    """(fields, input_reference bytes) from a multipart or JSON create request, or an error response."""
    content_type = req.header("content-type") or ""
    if content_type.startswith("multipart/form-data"):
        form = parse_multipart(req.body, content_type)
        if form is None:
            return oai_error(400, "Could not parse multipart form data.")
        image = form.file("input_reference")
        return dict(form.fields), (image.data if image is not None else None)
    if not isinstance(req.json, dict):
        return oai_error(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
        )
    fields = dict(req.json)
    reference = fields.pop("input_reference", None)
    if reference is None:
        return fields, None
    if not isinstance(reference, dict) or not isinstance(reference.get("image_url"), str):
        return oai_error(
            400,
            "input_reference must be an object with image_url (file_id references are not "
            "available on this service).",
            param="input_reference",
            code="invalid_value",
        )
    url = reference["image_url"]
    if not url.startswith("data:") or ";base64," not in url:
        return oai_error(
            400,
            "input_reference.image_url must be a base64 data URL here.",
            param="input_reference",
            code="invalid_value",
        )
    try:
        return fields, base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return oai_error(
            400,
            "input_reference.image_url is not valid base64.",
            param="input_reference",
            code="invalid_value",
        )


def invalid_request(fields: dict[str, Any], image: bytes | None) -> FakeResponse | None:
    """OpenAI's 400 for a create request the service refuses; None when it is valid. Fills in the
    defaults (model sora-2, seconds "4", size 720x1280) as the service does."""
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return oai_error(
            400,
            "Missing required parameter: 'prompt'.",
            param="prompt",
            code="missing_required_parameter",
        )
    model = fields.setdefault("model", "sora-2")
    if model not in MODEL_SIZES and model not in SNAPSHOTS:
        return oai_error(
            400,
            f"Invalid value: {model!r}. Supported values are: 'sora-2' and 'sora-2-pro'.",
            param="model",
            code="invalid_value",
        )
    seconds = fields.setdefault("seconds", "4")
    if not isinstance(seconds, str):
        return oai_error(
            400,
            "Invalid type for 'seconds': expected one of '4', '8', or '12', but got "
            f"{type(seconds).__name__} instead.",
            param="seconds",
            code="invalid_type",
        )
    if seconds not in SECONDS:
        return oai_error(
            400,
            f"Invalid value: {seconds!r}. Supported values are: '4', '8', and '12'.",
            param="seconds",
            code="invalid_value",
        )
    size = fields.setdefault("size", "720x1280")
    sizes = MODEL_SIZES[SNAPSHOTS.get(model, model)]
    if size not in MODEL_SIZES["sora-2-pro"] or size not in sizes:
        return oai_error(
            400,
            f"Invalid value: {size!r}. Supported sizes for {model} are: {', '.join(sizes)}.",
            param="size",
            code="invalid_value",
        )
    if image is not None:
        info = image_info(image)
        if info is None or info[0] not in IMAGE_TYPES:
            return oai_error(
                400,
                "Invalid file format. Supported formats are: image/jpeg, image/png, image/webp.",
                param="input_reference",
                code="invalid_value",
            )
        if f"{info[1]}x{info[2]}" != size:
            return oai_error(
                400, "Inpaint image must match the requested width and height", param="input_reference"
            )
    return None
