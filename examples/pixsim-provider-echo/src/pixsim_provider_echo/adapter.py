"""Adapter for the Echo Images API (the remote's protocol is in README.md; `fake_api.py` serves it).

Auth is an API key in the `X-Api-Key` header. Jobs are "tasks": `POST /api/v2/images` creates one,
`GET /api/v2/tasks/{uuid}` reads it, `DELETE /api/v2/tasks/{uuid}` cancels it. Image to image sends
its source inline (base64), so the dispatcher first resolves `image_url` to a local file for us.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx
from pixsim_provider_sdk import (
    AuthenticationError,
    ContentFilteredError,
    GenerationContext,
    GenerationResult,
    InvalidParametersError,
    JobNotFoundError,
    OperationType,
    Provider,
    ProviderAccount,
    ProviderError,
    ProviderStatus,
    ProviderStatusResult,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    ResolveSourceFn,
    percent_progress,
    read_local_file,
)

#: The remote's task states -> ours (also in the manifest's status_mapping_notes).
STATES = {
    "WAITING": ProviderStatus.PENDING,
    "WORKING": ProviderStatus.PROCESSING,
    "DONE": ProviderStatus.COMPLETED,
    "ERROR": ProviderStatus.FAILED,
    "BLOCKED": ProviderStatus.FILTERED,
    "CANCELED": ProviderStatus.CANCELLED,
}
MODES = {OperationType.TEXT_TO_IMAGE: "text", OperationType.IMAGE_TO_IMAGE: "image"}
_PROMPT = {"name": "prompt", "type": "string", "required": True, "max_length": 1000, "group": "core"}
_SIDE = {"type": "integer", "min": 64, "max": 1024, "default": 512}
_SEED = {"name": "seed", "type": "integer", "min": 0, "description": "Same seed and prompt, same image"}


class EchoProvider(Provider):
    """Text to image, and image to image (which echoes the source image back)."""

    default_base_url = "https://api.echo.example"
    http_timeout = 20.0

    @property
    def supported_operations(self) -> list[OperationType]:
        return list(MODES)

    def get_operation_parameter_spec(self) -> dict[str, dict[str, Any]]:
        size = [{"name": "width", **_SIDE}, {"name": "height", **_SIDE}]
        source = {
            "name": "image_url",
            "type": "string",
            "required": True,
            "media": "image",
            "description": "Source image: an http(s) URL",
        }
        return {
            OperationType.TEXT_TO_IMAGE.value: {"parameters": [_PROMPT, *size, _SEED]},
            OperationType.IMAGE_TO_IMAGE.value: {"parameters": [_PROMPT, source, _SEED]},
        }

    def map_parameters(self, operation_type: OperationType, params: dict[str, Any]) -> dict[str, Any]:
        self.validate_operation(operation_type)
        mapped = {"mode": MODES[operation_type], "prompt": params.get("prompt")}
        keys = (
            ("width", "height", "seed")
            if operation_type is OperationType.TEXT_TO_IMAGE
            else ("seed", "image_url")
        )
        mapped.update({k: params[k] for k in keys if params.get(k) is not None})
        return mapped

    def requires_file_preparation(self) -> bool:
        return True

    async def prepare_execution_params(
        self, generation: GenerationContext, mapped_params: dict[str, Any], resolve_source_fn: ResolveSourceFn
    ) -> dict[str, Any]:
        """Image to image: fetch the source to a local file (the dispatcher deletes `_temp_paths` later)."""
        if mapped_params.get("mode") != "image":
            return mapped_params
        local_path, temp_paths = await resolve_source_fn(
            mapped_params["image_url"], generation.user_id, ".png", param="image_url"
        )
        return {**mapped_params, "image_path": local_path, "_temp_paths": temp_paths}

    async def execute(
        self, operation_type: OperationType, account: ProviderAccount, params: dict[str, Any]
    ) -> GenerationResult:
        self.validate_operation(operation_type)
        body = {
            k: params[k] for k in ("mode", "prompt", "width", "height", "seed") if params.get(k) is not None
        }
        if body.get("mode") == "image":
            if not params.get("image_path"):
                raise InvalidParametersError(f"{self.provider_id}: image_to_image needs prepared files")
            source = read_local_file(self.provider_id, params["image_path"], "the source")
            body["source"] = base64.b64encode(source).decode()
        task = await self._call("POST", "/api/v2/images", account, json=body)
        return GenerationResult(
            provider_job_id=task["uuid"], status=STATES.get(task.get("state"), ProviderStatus.PENDING)
        )

    async def check_status(
        self, account: ProviderAccount, provider_job_id: str, operation_type: OperationType | None = None
    ) -> ProviderStatusResult:
        task = await self._call("GET", f"/api/v2/tasks/{quote(provider_job_id, safe='')}", account)
        status = STATES.get(task.get("state"))
        if status is None:
            raise ProviderError(
                f"{self.provider_id}: unknown task state {task.get('state')!r}",
                error_code="provider_bad_response",
            )
        percent = task.get("percent")
        result = ProviderStatusResult(status=status, progress=percent_progress(percent))
        if status is ProviderStatus.COMPLETED:
            output = task.get("result") or {}
            result.image_url, result.width, result.height = (
                output.get("url"),
                output.get("width"),
                output.get("height"),
            )
        elif status in (ProviderStatus.FAILED, ProviderStatus.FILTERED):
            result.error_code = (
                "content_filtered" if status is ProviderStatus.FILTERED else "generation_failed"
            )
            result.error_message = task.get("reason") or status.value
        return result

    async def cancel(self, account: ProviderAccount, provider_job_id: str) -> bool:
        """True when the remote cancelled the task; False when it had already finished (409)."""
        resp, data = await self._send("DELETE", f"/api/v2/tasks/{quote(provider_job_id, safe='')}", account)
        if resp.status_code == 409:
            return False
        if resp.is_success:
            return True
        raise self._error(resp, data, account)

    def estimate_credits(
        self, operation_type: OperationType, params: dict[str, Any]
    ) -> dict[str, int] | None:
        return {self.manifest.credit_types[0]: 1}

    async def extract_account_data(
        self, raw_data: dict[str, Any], *, fallback_email: str | None = None
    ) -> dict:
        """An API key pasted by the user: `{"api_key": ..., "email"?}`."""
        key = raw_data.get("api_key")
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"{self.provider_id}: raw_data needs 'api_key' (from the Echo dashboard)")
        return {"email": raw_data.get("email") or fallback_email, "credentials": {"api_key": key.strip()}}

    # -- HTTP -----------------------------------------------------------------------------------
    async def _call(self, method: str, path: str, account: ProviderAccount, **kw: Any) -> dict[str, Any]:
        """One call whose success body is `{"task": {...}}`; any other answer raises the matching error."""
        resp, data = await self._send(method, path, account, **kw)
        if resp.is_success and isinstance(data.get("task"), dict):
            return data["task"]
        raise self._error(resp, data, account)

    async def _send(
        self, method: str, path: str, account: ProviderAccount, **kw: Any
    ) -> tuple[httpx.Response, dict]:
        try:
            resp = await self.http.request(method, path, headers={"X-Api-Key": _key(account)}, **kw)
        except httpx.TransportError as exc:  # connection refused or reset, and timeouts
            raise ProviderUnavailableError(
                f"{self.provider_id}: {method} {path} failed: {type(exc).__name__}"
            ) from None  # the cause's repr may carry request details; the name is enough
        try:
            data = resp.json()
        except ValueError:
            data = None
        return resp, data if isinstance(data, dict) else {}

    def _error(self, resp: httpx.Response, data: dict, account: ProviderAccount) -> ProviderError:
        detail = data.get("detail") if isinstance(data, dict) else None
        kind = detail.get("type") if isinstance(detail, dict) else None
        text = (detail.get("msg") if isinstance(detail, dict) else detail) or resp.reason_phrase
        # The key never reaches a message, even if the remote echoes it back.
        message = f"{self.provider_id}: {text} (HTTP {resp.status_code})".replace(_key(account), "***")
        status = resp.status_code
        if kind == "moderation":
            return ContentFilteredError(message)
        if status == 401:
            return AuthenticationError(message)
        if status == 402:
            return QuotaExceededError(
                message, credits_needed=detail.get("cost") if isinstance(detail, dict) else None
            )
        if status == 429:
            retry = resp.headers.get("Retry-After")
            return RateLimitError(message, retry_after=float(retry) if retry and retry.isdigit() else None)
        if status == 404:
            return JobNotFoundError(message)
        if status >= 500:
            return ProviderUnavailableError(message)
        if resp.is_success:
            return ProviderError(
                f"{self.provider_id}: unexpected answer (HTTP {status})", error_code="provider_bad_response"
            )
        return InvalidParametersError(message)


def _key(account: ProviderAccount) -> str:
    key = (account.credentials or {}).get("api_key")
    if not key:
        raise AuthenticationError(f"account {account.id} has no API key")
    return str(key)
