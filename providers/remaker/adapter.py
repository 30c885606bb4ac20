"""Adapter for Remaker's web internal API (the server side is fake_api.py; the protocol is in README.md).

Remaker is a "replay the browser" provider: the same multipart `create-job` / `get-job` calls the
website makes, authenticated with the session JWT a browser extension captured. The adapter never
names its own provider id or URL: both come from the manifest and `self.base_url`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from pixsim_provider_sdk import (
    GenerationContext,
    GenerationResult,
    InvalidParametersError,
    OperationType,
    Provider,
    ProviderAccount,
    ProviderError,
    ProviderStatus,
    ProviderStatusResult,
    ResolveSourceFn,
    json_object,
    percent_progress,
    sniff_image,
    unreachable,
)
from pixsim_provider_sdk.files import cleanup_temp_paths, resolve_source
from pixsim_provider_sdk.media_types import EXTENSIONS

from . import account as acct
from . import errors as codes
from .params import PHOTO_EDITOR, PROMPT_EDITOR, map_params, parameter_spec
from .pricing import job_credits

#: Paths of each editor's endpoints (relative to the API host, api.remaker.ai).
CREATE_JOB = {
    PHOTO_EDITOR: "/api/pai/v4/ai-photo-editor/create-job",
    PROMPT_EDITOR: "/api/pai/v4/prompt-editor/create-job",
}
GET_JOB = {
    PHOTO_EDITOR: "/api/pai/v4/ai-photo-editor/get-job/{job_id}",
    PROMPT_EDITOR: "/api/pai/v4/prompt-editor/get-job/{job_id}",
}
USER_INFO = "/api/pai-login/v1/user/get-userinfo"
UPLOAD_IMAGE = "/api/pai/v4/common/upload-image"
#: Job ids of the prompt-editor carry this prefix so check_status can pick the right endpoint.
PROMPT_EDITOR_PREFIX = "pe:"
#: Multipart field of the input image(s) per editor.
IMAGE_FIELD = {PHOTO_EDITOR: "image", PROMPT_EDITOR: "image_files"}
#: Uploads are slow on the real site (large images through a CDN); polls are not.
SUBMIT_TIMEOUT = 120.0
PROCESSING_CODES = {codes.CODE_PHOTO_EDITOR_PROCESSING, codes.CODE_PROMPT_EDITOR_PROCESSING}


class RemakerProvider(Provider):
    """Remaker's prompt-editor (image_to_image) and photo-editor (image_edit, inpainting)."""

    default_base_url = "https://api.remaker.ai"

    @property
    def supported_operations(self) -> list[OperationType]:
        return [OperationType.IMAGE_TO_IMAGE, OperationType.IMAGE_EDIT]

    def get_operation_parameter_spec(self) -> dict[str, dict[str, Any]]:
        return parameter_spec()

    def map_parameters(self, operation_type: OperationType, params: dict[str, Any]) -> dict[str, Any]:
        self.validate_operation(operation_type)
        return map_params(operation_type, params, self.provider_id)

    # -- file preparation -----------------------------------------------------------------------
    def requires_file_preparation(self) -> bool:
        return True  # every job uploads local files as multipart

    async def prepare_execution_params(
        self, generation: GenerationContext, mapped_params: dict[str, Any], resolve_source_fn: ResolveSourceFn
    ) -> dict[str, Any]:
        """Resolve the image(s) and the mask to local files (`image_paths`, `mask_path`), all listed in
        `_temp_paths` for the caller to delete after `execute`."""
        temps: list[str] = []
        try:
            image_paths = []
            for index, source in enumerate(mapped_params.get("image_sources") or []):
                param = f"extra_image_urls[{index - 1}]" if index else "image_url"
                path, more = await self._resolve(resolve_source_fn, source, generation.user_id, ".jpg", param)
                temps.extend(more)
                image_paths.append(path)
            prepared = {**mapped_params, "image_paths": image_paths}
            if mapped_params.get("mask_source"):
                path, more = await self._resolve(
                    resolve_source_fn, mapped_params["mask_source"], generation.user_id, ".png", "mask_url"
                )
                temps.extend(more)
                prepared["mask_path"] = path
        except BaseException:
            cleanup_temp_paths(temps)  # the caller only cleans up what we return
            raise
        prepared["_temp_paths"] = [*mapped_params.get("_temp_paths", []), *temps]
        return prepared

    async def _resolve(
        self, resolve_source_fn: ResolveSourceFn, source: str, user_id: str | None, suffix: str, param: str
    ) -> tuple[str, list[str]]:
        try:  # a refused source raises SourceRejected, which passes through
            return await resolve_source_fn(source, user_id, suffix, param=param)
        except httpx.TransportError as exc:
            raise ProviderError(f"{self.provider_id}: cannot fetch an input image: {exc!r}") from exc
        except (OSError, ValueError, httpx.HTTPError) as exc:
            raise InvalidParametersError(f"{self.provider_id}: cannot read an input image: {exc}") from exc

    # -- submit ---------------------------------------------------------------------------------
    async def execute(
        self, operation_type: OperationType, account: ProviderAccount, params: dict[str, Any]
    ) -> GenerationResult:
        self.validate_operation(operation_type)
        # The dispatcher passes prepared params; scripts and tests may pass canonical ones.
        mapped = params if "mode" in params else self.map_parameters(operation_type, params)
        if "image_paths" in mapped:
            return await self._submit(account, mapped)
        generation = GenerationContext(
            id="direct", provider_id=self.provider_id, operation_type=operation_type, params=params
        )
        prepared = await self.prepare_execution_params(generation, mapped, resolve_source)
        try:
            return await self._submit(account, prepared)
        finally:
            cleanup_temp_paths(prepared["_temp_paths"])

    async def _submit(self, account: ProviderAccount, mapped: dict[str, Any]) -> GenerationResult:
        mode = mapped["mode"]
        files = [(IMAGE_FIELD[mode], self._file_part(p, "input")) for p in mapped["image_paths"]]
        if mode == PHOTO_EDITOR:
            if not mapped.get("mask_path"):
                raise InvalidParametersError(f"{self.provider_id}: inpainting needs a prepared mask_path")
            files.append(("mask", self._file_part(mapped["mask_path"], "mask")))
            data = {"prompt": mapped["prompt"], "task_type": mapped["task_type"], "turnstile_token": ""}
        else:
            data = {k: mapped[k] for k in ("prompt", "task_type", "aspect_ratio", "image_resolution")}
        # The form is built from the mapped fields only: Remaker takes no client reference, so the
        # generation id (`_reference`) is never sent (README, "Lost answers").
        payload = await self._call(
            "POST",
            CREATE_JOB[mode],
            account,
            data=data,
            files=files,
            timeout=self._submit_timeout(),
            submit=True,
        )
        if payload.get("code") != codes.CODE_OK:  # Remaker's own answer that it refused: no job
            raise codes.code_error(payload, self.provider_id, self._secrets(account), what="create-job")
        job_id = (payload.get("result") or {}).get("job_id")
        if not job_id:  # accepted (code 100000), but we cannot know which job it made
            raise ProviderError(
                f"{self.provider_id}: create-job answered without a job_id",
                error_code="provider_bad_response",
                maybe_accepted=True,
            )
        prefix = PROMPT_EDITOR_PREFIX if mode == PROMPT_EDITOR else ""
        return GenerationResult(
            provider_job_id=f"{prefix}{job_id}",
            status=ProviderStatus.PENDING,
            metadata={"mode": mode, "task_type": mapped["task_type"], "provider_status": payload["code"]},
        )

    def _file_part(self, path: str, stem: str) -> tuple[str, bytes, str]:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise InvalidParametersError(
                f"{self.provider_id}: cannot read {stem} file: {exc.strerror}"
            ) from exc
        # The site accepts PNG, JPEG and WebP, named by their magic bytes.
        content_type = sniff_image(data)
        if content_type is None:
            return f"{stem}.bin", data, "application/octet-stream"
        return f"{stem}{EXTENSIONS[content_type]}", data, content_type

    async def upload_asset(self, account: ProviderAccount, file_path: str) -> dict[str, Any]:
        """Upload a local image to Remaker's storage; returns `{"id", "url", "expires_at"}`."""
        part = self._file_part(file_path, "upload")
        payload = await self._call(
            "POST", UPLOAD_IMAGE, account, files=[("file", part)], timeout=self._submit_timeout()
        )
        if payload.get("code") != codes.CODE_OK:
            raise codes.code_error(payload, self.provider_id, self._secrets(account), what="upload")
        result = payload.get("result") or {}
        return {
            "id": result.get("file_id"),
            "url": result.get("url"),
            "expires_at": _expiry(result.get("url")),
        }

    # -- poll -----------------------------------------------------------------------------------
    async def check_status(
        self, account: ProviderAccount, provider_job_id: str, operation_type: OperationType | None = None
    ) -> ProviderStatusResult:
        if provider_job_id.startswith(PROMPT_EDITOR_PREFIX):
            mode, job_id = PROMPT_EDITOR, provider_job_id[len(PROMPT_EDITOR_PREFIX) :]
        else:
            mode, job_id = PHOTO_EDITOR, provider_job_id
        path = GET_JOB[mode].format(job_id=quote(job_id, safe=""))
        payload = await self._call("GET", path, account, job=True)
        code = payload.get("code")
        result = payload.get("result") if isinstance(payload.get("result"), dict) else {}
        text, zh = codes.remote_message(payload)
        metadata: dict[str, Any] = {"provider_status": code, "mode": mode}
        if code == codes.CODE_OK:
            outputs = [u for u in result.get("output") or [] if isinstance(u, str) and u]
            if not outputs:  # accepted as done, result still being stored: keep polling
                return ProviderStatusResult(
                    ProviderStatus.PROCESSING,
                    progress=percent_progress(result.get("progress"), 0.99),
                    metadata=metadata,
                )
            metadata.update(outputs=outputs, result_expires_at=_expiry(outputs[0]))
            return ProviderStatusResult(
                ProviderStatus.COMPLETED, progress=1.0, image_url=outputs[0], metadata=metadata
            )
        if code == codes.CODE_QUEUED:
            return ProviderStatusResult(ProviderStatus.PENDING, progress=0.0, metadata=metadata)
        if code in PROCESSING_CODES:
            return ProviderStatusResult(
                ProviderStatus.PROCESSING,
                progress=percent_progress(result.get("progress")),
                metadata=metadata,
            )
        if code == codes.CODE_CONTENT_VIOLATION:
            return ProviderStatusResult(
                ProviderStatus.FILTERED,
                error_code="content_output_rejected",
                error_message=text or "the output was rejected by Remaker's content policy",
                metadata={**metadata, "provider_message_zh": zh},
            )
        if code in (
            codes.CODE_JOB_NOT_FOUND,
            codes.CODE_AUTH,
            codes.CODE_RATE_LIMITED,
            codes.CODE_SERVER_ERROR,
        ):
            raise codes.code_error(payload, self.provider_id, self._secrets(account), what="get-job")
        return ProviderStatusResult(
            ProviderStatus.FAILED,
            error_code="provider_generic",
            error_message=f"{text or 'the job failed'} (code {code})",
            metadata={**metadata, "provider_message_zh": zh},
        )

    async def find_job(
        self,
        account: ProviderAccount,
        reference: str,
        operation_type: OperationType,
        params: dict[str, Any],
        since: float | None = None,
    ) -> str | None:
        """Remaker cannot be asked: its web API takes no client reference and lists no jobs (only
        `get-job/{id}`, with an id we never received), so whether an unanswered create-job made a job
        cannot be known. Always "cannot say" (the dispatcher then ends it `submit_outcome_unknown`)."""
        raise NotImplementedError(
            f"{self.provider_id}: Remaker's API has no job listing and no client reference to look a job up by"
        )

    async def cancel(self, account: ProviderAccount, provider_job_id: str) -> bool:
        """Remaker has no cancel endpoint: a started job runs to its end (and is charged if it succeeds)."""
        return False

    # -- credits and accounts -------------------------------------------------------------------
    def estimate_credits(
        self, operation_type: OperationType, params: dict[str, Any]
    ) -> dict[str, int] | None:
        return {self.manifest.credit_types[0]: job_credits(_pricing_view(operation_type, params))}

    def compute_actual_credits(
        self, generation: GenerationContext, status: ProviderStatusResult, estimate: dict[str, int]
    ) -> dict[str, int]:
        # A fixed price per job: from the params when the caller has them, else what was reserved.
        credit_type = next(iter(estimate), self.manifest.credit_types[0])
        if generation.params:
            return {credit_type: job_credits(_pricing_view(generation.operation_type, generation.params))}
        return dict(estimate) or {credit_type: job_credits(_pricing_view(generation.operation_type, {}))}

    def charges_filtered_jobs(self) -> bool:
        return False  # Remaker refunds jobs whose output its moderation rejects

    async def get_credits(self, account: ProviderAccount) -> dict[str, int]:
        """The account's balance from the user-info endpoint: `{"web": n}`."""
        product_code = (account.credentials or {}).get("product_code") or acct.DEFAULT_PRODUCT_CODE
        # The site sends these as multipart fields (no files), hence (None, value) parts.
        form = [("product_code", (None, str(product_code))), ("turnstile_token", (None, ""))]
        payload = await self._call("POST", USER_INFO, account, files=form)
        if payload.get("code") != codes.CODE_OK:
            raise codes.code_error(payload, self.provider_id, self._secrets(account), what="get-userinfo")
        credits = (payload.get("result") or {}).get("credits")
        if not isinstance(credits, int | float):
            raise ProviderError(
                f"{self.provider_id}: get-userinfo answered without credits",
                error_code="provider_bad_response",
            )
        return {self.manifest.credit_types[0]: int(credits)}

    async def extract_account_data(
        self, raw_data: dict[str, Any], *, fallback_email: str | None = None
    ) -> dict:
        """A browser capture (token, product headers, e-mail) -> `{"email", "credentials"}`; see README."""
        return acct.extract(self.provider_id, raw_data, fallback_email)

    # -- HTTP -----------------------------------------------------------------------------------
    def _secrets(self, account: ProviderAccount) -> list[str]:
        return [str((account.credentials or {}).get("token") or "")]

    def _submit_timeout(self) -> httpx.Timeout:
        # Long uploads may take SUBMIT_TIMEOUT to send, but waiting for an answer stays bounded by
        # http_timeout, so an API that never answers fails (retryably) in good time.
        return httpx.Timeout(self.http_timeout, write=SUBMIT_TIMEOUT)

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
        """Send; raise the SDK error for an HTTP failure; return the JSON envelope. `submit`: a create-job,
        whose failures after which the job may exist say so (`maybe_accepted`): a timeout or a reset after
        the request was sent, an HTTP 5xx other than 503 (nginx answers 503 before the app sees anything),
        a 2xx without a JSON envelope. Never a refused connection, a DNS failure, 429 or 4xx."""
        headers = acct.headers_for(self.provider_id, account)
        try:
            resp = await self.http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as exc:  # includes timeouts
            error = unreachable(self.provider_id, self.base_url, exc, self._secrets(account))
            error.maybe_accepted = submit and error.maybe_received
            raise error from exc
        return json_object(
            resp,
            self.provider_id,
            f"{method} {path}",
            submit=submit,
            error_for=lambda r: codes.http_error(r, self.provider_id, self._secrets(account), job=job),
        )


def _pricing_view(operation_type: OperationType, params: dict[str, Any]) -> dict[str, Any]:
    """Just what pricing needs, without map_params' validation (an estimate must never raise)."""
    photo = operation_type is OperationType.IMAGE_EDIT or bool(params.get("mask_url"))
    return {
        "mode": PHOTO_EDITOR if photo else PROMPT_EDITOR,
        "task_type": params.get("task_type"),
        "image_resolution": params.get("image_resolution"),
    }


def _expiry(url: Any) -> str | None:
    """When a signed result URL stops working (its `Expires` query parameter), as ISO 8601."""
    if not isinstance(url, str):
        return None
    expires = parse_qs(urlsplit(url).query).get("Expires")
    try:
        return datetime.fromtimestamp(int(expires[0]), UTC).isoformat() if expires else None
    except (ValueError, OverflowError):
        return None
