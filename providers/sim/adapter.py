"""Adapter for the Simulator's remote API (the server side is fake_api.py; the protocol is in README.md).

The adapter never names its own provider id or URL: both come from the manifest and `self.base_url`,
so a copy of this folder with a new manifest id is a working second provider.
"""

from __future__ import annotations

import math
import mimetypes
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pixsim_provider_sdk import (
    REFERENCE_PARAM,
    AuthenticationError,
    ContentFilteredError,
    GenerationContext,
    GenerationResult,
    OperationType,
    Provider,
    ProviderAccount,
    ProviderError,
    ProviderStatus,
    ProviderStatusResult,
    QuotaExceededError,
    error_for_status,
    json_object,
    local_source,
    parse_retry_after,
    percent_progress,
    read_local_file,
    scrub,
    status_of,
    unreachable,
)
from pixsim_provider_sdk.files import ImageUrlSource
from pixsim_provider_sdk.tokens import cookie_map

VIDEO_OPERATIONS = frozenset({OperationType.TEXT_TO_VIDEO, OperationType.IMAGE_TO_VIDEO})
DEFAULT_DURATION = 5
DEFAULT_QUALITY = "720p"
#: The remote's statuses -> ours (also in the manifest's status_mapping_notes).
STATUS_MAP = {
    "queued": ProviderStatus.PENDING,
    "running": ProviderStatus.PROCESSING,
    "succeeded": ProviderStatus.COMPLETED,
    "failed": ProviderStatus.FAILED,
    "moderated": ProviderStatus.FILTERED,
    "cancelled": ProviderStatus.CANCELLED,
}
#: Fields of the remote job body. Everything else in the mapped params (image_url, local_image_path,
#: _temp_paths) is for this side only and is never sent.
REMOTE_FIELDS = ("operation", "prompt", "duration", "quality", "outcome", "latency", "width", "height")
#: The system account has no stored credentials; the remote accepts this token for it.
SYSTEM_TOKEN = "sim-system-token"
#: The remote's session cookie. A property of the remote API, not of the provider id.
TOKEN_COOKIE = "sim_token"

_OUTCOME = {
    "name": "outcome",
    "type": "string",
    "enum": ["success", "fail", "filter"],
    "default": "success",
    "description": "Simulator knob: how the job ends",
}
_LATENCY = {
    "name": "latency",
    "type": "number",
    "min": 0,
    "max": 600,
    "description": "Simulator knob: seconds the job takes (default: the fake's own)",
}
_PROMPT = {"name": "prompt", "type": "string", "required": True, "max_length": 2000, "group": "core"}
_VIDEO_PARAMS = [
    _PROMPT,
    {
        "name": "duration",
        "type": "integer",
        "default": DEFAULT_DURATION,
        "min": 1,
        "max": 20,
        "description": "Length of the video in seconds",
    },
    {"name": "quality", "type": "string", "enum": ["360p", "720p", "1080p"], "default": DEFAULT_QUALITY},
    _OUTCOME,
    _LATENCY,
]


class SimProvider(ImageUrlSource, Provider):
    """The built-in simulated provider: text/image to video and text to image against the fake API.
    image_to_video's `image_url` is fetched by the dispatcher (`ImageUrlSource`) and uploaded by `execute`."""

    image_url_required_by = frozenset({OperationType.IMAGE_TO_VIDEO})

    default_base_url = "http://127.0.0.1:8100"

    @property
    def supported_operations(self) -> list[OperationType]:
        return [OperationType.TEXT_TO_VIDEO, OperationType.IMAGE_TO_VIDEO, OperationType.TEXT_TO_IMAGE]

    def get_operation_parameter_spec(self) -> dict[str, dict[str, Any]]:
        image_url = {
            "name": "image_url",
            "type": "string",
            "required": True,
            "group": "core",
            "description": "Source image: an http(s) URL",
        }
        side = {"type": "integer", "min": 64, "max": 2048}
        return {
            OperationType.TEXT_TO_VIDEO.value: {"parameters": list(_VIDEO_PARAMS)},
            OperationType.IMAGE_TO_VIDEO.value: {"parameters": [*_VIDEO_PARAMS, image_url]},
            OperationType.TEXT_TO_IMAGE.value: {
                "parameters": [
                    _PROMPT,
                    _OUTCOME,
                    _LATENCY,
                    {"name": "width", **side},
                    {"name": "height", **side},
                ]
            },
        }

    # -- submit ---------------------------------------------------------------------------------
    def map_parameters(self, operation_type: OperationType, params: dict[str, Any]) -> dict[str, Any]:
        self.validate_operation(operation_type)
        mapped: dict[str, Any] = {
            "operation": operation_type.value,
            "prompt": params.get("prompt"),
            "outcome": params.get("outcome") or "success",
        }
        if operation_type in VIDEO_OPERATIONS:
            mapped["duration"] = params.get("duration") or DEFAULT_DURATION
            mapped["quality"] = params.get("quality") or DEFAULT_QUALITY
        else:
            mapped.update({k: params[k] for k in ("width", "height") if params.get(k) is not None})
        if params.get("latency") is not None:
            mapped["latency"] = params["latency"]
        if operation_type is OperationType.IMAGE_TO_VIDEO:
            mapped["image_url"] = params.get("image_url")  # becomes an upload id in execute()
        return mapped

    async def execute(
        self, operation_type: OperationType, account: ProviderAccount, params: dict[str, Any]
    ) -> GenerationResult:
        self.validate_operation(operation_type)
        # The dispatcher passes mapped params; scripts and tests may pass canonical ones.
        mapped = params if "operation" in params else self.map_parameters(operation_type, params)
        body = {k: mapped[k] for k in REMOTE_FIELDS if mapped.get(k) is not None}
        metadata: dict[str, Any] = {}
        if operation_type is OperationType.IMAGE_TO_VIDEO:
            upload = await self._upload_source(account, mapped)
            body["image"] = metadata["upload_id"] = upload["id"]
        reference = mapped.get(REFERENCE_PARAM)
        headers = {"Idempotency-Key": str(reference)} if reference else {}
        job = await self._call("POST", "/v1/jobs", account, json=body, headers=headers, submit=True)
        metadata["remote_status"] = job.get("status")
        return GenerationResult(
            provider_job_id=job["id"],
            status=STATUS_MAP.get(job.get("status"), ProviderStatus.PENDING),
            metadata=metadata,
        )

    async def _upload_source(self, account: ProviderAccount, mapped: dict[str, Any]) -> dict[str, Any]:
        async with local_source(
            self.provider_id,
            mapped.get("image_url"),
            mapped.get("local_image_path"),
            needed_by="image_to_video",
        ) as path:
            return await self.upload_asset(account, path)

    async def upload_asset(self, account: ProviderAccount, file_path: str) -> dict[str, Any]:
        """Upload a local file; returns the remote's `{"id", "url", ...}`."""
        path = Path(file_path)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = read_local_file(self.provider_id, path)
        return await self._call(
            "POST", "/v1/uploads", account, content=data, headers={"Content-Type": content_type}
        )

    # -- poll and cancel ------------------------------------------------------------------------
    async def check_status(
        self, account: ProviderAccount, provider_job_id: str, operation_type: OperationType | None = None
    ) -> ProviderStatusResult:
        job = await self._call("GET", f"/v1/jobs/{quote(provider_job_id, safe='')}", account, job=True)
        remote = job.get("status")
        status = status_of(self.provider_id, STATUS_MAP, remote)
        result = ProviderStatusResult(
            status=status, progress=percent_progress(job.get("progress")), metadata={"remote_status": remote}
        )
        error = job.get("error") or {}
        if status is ProviderStatus.COMPLETED:
            self._fill_output(result, job, operation_type)
        elif status is ProviderStatus.FAILED:
            result.error_code = error.get("code") or "generation_failed"
            result.error_message = error.get("message") or "the job failed"
        elif status is ProviderStatus.FILTERED:
            result.error_code = "content_filtered"
            result.error_message = error.get("message") or "rejected by the content policy"
        return result

    def _fill_output(
        self, result: ProviderStatusResult, job: dict[str, Any], op: OperationType | None
    ) -> None:
        output = job.get("output") or {}
        if not output.get("url"):
            raise ProviderError(
                f"{self.provider_id}: job {job.get('id')} succeeded without an output url",
                error_code="provider_bad_response",
            )
        if op is None:
            op = _operation(job.get("operation"))
        if op is OperationType.TEXT_TO_IMAGE:
            result.image_url = output["url"]
        else:
            result.video_url = output["url"]
        result.thumbnail_url = output.get("thumbnail_url")
        result.width, result.height = output.get("width"), output.get("height")
        if isinstance(output.get("duration"), int | float):
            result.duration_sec = float(output["duration"])

    async def find_job(
        self,
        account: ProviderAccount,
        reference: str,
        operation_type: OperationType,
        params: dict[str, Any],
        since: float | None = None,
    ) -> str | None:
        """The remote lists a token's jobs by the Idempotency-Key they were submitted with."""
        body = await self._call("GET", "/v1/jobs", account, params={"reference": reference, "limit": 1})
        items = body.get("items")
        if not isinstance(items, list):
            raise ProviderError(
                f"{self.provider_id}: job list without items", error_code="provider_bad_response"
            )
        return str(items[0]["id"]) if items else None

    async def cancel(self, account: ProviderAccount, provider_job_id: str) -> bool:
        """True when the remote cancelled the job; False when it had already finished (409)."""
        resp = await self._send("POST", f"/v1/jobs/{quote(provider_job_id, safe='')}/cancel", account)
        if resp.status_code == 200:
            return True
        if resp.status_code == 409:
            return False
        raise self._error(resp, account, job=True)

    def expected_duration_s(self, operation_type: OperationType, params: dict[str, Any]) -> float | None:
        """The `latency` knob is exactly how long the remote takes. Without it the remote's own default
        applies (whatever its operator set), which `duration` and `quality` do not change: None, so the
        poller learns it from past jobs."""
        latency = params.get("latency")
        if isinstance(latency, int | float) and not isinstance(latency, bool) and latency >= 0:
            return float(latency)
        return None

    # -- credits and accounts -------------------------------------------------------------------
    def estimate_credits(
        self, operation_type: OperationType, params: dict[str, Any]
    ) -> dict[str, int] | None:
        credit_type = self.manifest.credit_types[0]
        if operation_type in VIDEO_OPERATIONS:
            return {credit_type: math.ceil(params.get("duration") or DEFAULT_DURATION)}
        return {credit_type: 1}

    def compute_actual_credits(
        self, generation: GenerationContext, status: ProviderStatusResult, estimate: dict[str, int]
    ) -> dict[str, int]:
        # Video is billed per second actually rendered, which may differ from what was asked.
        if generation.operation_type in VIDEO_OPERATIONS and status.duration_sec:
            credit_type = next(iter(estimate), self.manifest.credit_types[0])
            return {credit_type: math.ceil(status.duration_sec)}
        return dict(estimate)

    async def extract_account_data(
        self, raw_data: dict[str, Any], *, fallback_email: str | None = None
    ) -> dict:
        """`{"token": ...}` or browser cookies with `sim_token` -> `{"email", "credentials": {"token"}}`."""
        token = raw_data.get("token") or cookie_map(raw_data.get("cookies")).get(TOKEN_COOKIE)
        if not token:
            raise ValueError(
                f"{self.provider_id}: no token found: pass raw_data['token'] "
                f"or a '{TOKEN_COOKIE}' cookie in raw_data['cookies']"
            )
        return {"email": raw_data.get("email") or fallback_email, "credentials": {"token": str(token)}}

    # -- HTTP -----------------------------------------------------------------------------------
    def _token(self, account: ProviderAccount) -> str:
        token = (account.credentials or {}).get("token")
        if token:
            return str(token)
        if account.is_system:
            return SYSTEM_TOKEN
        raise AuthenticationError(f"{self.provider_id}: account {account.id} has no token")

    async def _send(self, method: str, path: str, account: ProviderAccount, **kw: Any) -> httpx.Response:
        token = self._token(account)
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        try:
            return await self.http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as exc:  # includes timeouts
            raise unreachable(self.provider_id, self.base_url, exc, [token]) from exc

    async def _call(
        self,
        method: str,
        path: str,
        account: ProviderAccount,
        *,
        job: bool = False,
        submit: bool = False,
        **kw: Any,
    ) -> dict[str, Any]:
        """Send; raise the SDK error matching a failure; return the JSON body. `job`: 404 = no such job.
        `submit`: a failure after which the remote may have created the job says so (`maybe_accepted`)."""
        resp = await self._send(method, path, account, **kw)
        return json_object(
            resp,
            self.provider_id,
            f"{method} {path}",
            submit=submit,
            error_for=lambda r: self._error(r, account, job=job),
        )

    def _error(self, resp: httpx.Response, account: ProviderAccount, *, job: bool) -> ProviderError:
        try:
            error = resp.json().get("error")
        except (ValueError, AttributeError):
            error = None
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        detail = error.get("message") or resp.reason_phrase
        status = resp.status_code
        message = scrub(
            f"{self.provider_id}: {detail} (HTTP {status}{', ' + code if code else ''})",
            [self._token(account)],
        )
        if code == "content_policy_violation":
            return ContentFilteredError(message)
        if status == 402:
            return QuotaExceededError(message, credits_needed=error.get("needed"))
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        return error_for_status(status, message, job=job, retry_after=retry_after)


def _operation(value: Any) -> OperationType | None:
    try:
        return OperationType(value)
    except ValueError:
        return None
