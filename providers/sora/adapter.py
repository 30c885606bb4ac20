"""Adapter for OpenAI's Sora Videos API (`/v1/videos`); the fake side is fake_api.py, the protocol README.md.

text_to_video posts a JSON body; image_to_video posts multipart/form-data with the first-frame image as the
`input_reference` file part. Jobs are polled with `GET /v1/videos/{id}`; results are served by the
authenticated `GET /v1/videos/{id}/content` until the video's `expires_at`. The adapter names neither its id
nor its URL: both come from the manifest and `self.base_url`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

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
    image_info,
    json_object,
    local_source,
    read_local_file,
    unreachable,
)
from pixsim_provider_sdk.files import ImageUrlSource

from . import auth, params, pricing
from .errors import map_error
from .status import STATUS_MAP, to_status

VARIANTS = ("video", "thumbnail", "spritesheet")


#: How far back `find_job` pages through the account's videos, and the clock skew it allows for.
FIND_PAGES = 5
CLOCK_SKEW_S = 30.0


class SoraProvider(ImageUrlSource, Provider):
    """Sora 2 / Sora 2 Pro video generation: text_to_video and image_to_video. image_to_video's first frame
    (`image_url`) is fetched by the dispatcher (`ImageUrlSource`) and sent as a multipart part."""

    image_url_required_by = frozenset({OperationType.IMAGE_TO_VIDEO})

    default_base_url = "https://api.openai.com"
    http_timeout = 60.0  # multipart uploads of a first-frame image can take a while

    @property
    def supported_operations(self) -> list[OperationType]:
        return list(params.VIDEO_OPERATIONS)

    def get_operation_parameter_spec(self) -> dict[str, dict[str, Any]]:
        return params.parameter_spec()

    # -- submit ---------------------------------------------------------------------------------
    def map_parameters(self, operation_type: OperationType, params_in: dict[str, Any]) -> dict[str, Any]:
        self.validate_operation(operation_type)
        return params.map_parameters(self.provider_id, operation_type, params_in)

    async def execute(
        self, operation_type: OperationType, account: ProviderAccount, params_in: dict[str, Any]
    ) -> GenerationResult:
        self.validate_operation(operation_type)
        # The dispatcher passes mapped params; scripts and tests may pass canonical ones.
        mapped = params_in if "seconds" in params_in else self.map_parameters(operation_type, params_in)
        body = {k: mapped[k] for k in params.REMOTE_FIELDS if mapped.get(k) is not None}
        if operation_type is OperationType.IMAGE_TO_VIDEO:
            data, filename = await self._source_image(mapped)
            mime, body["size"] = self._image_size(data, body["model"], body.get("size"))
            request: dict[str, Any] = {"data": body, "files": {"input_reference": (filename, data, mime)}}
        else:
            request = {"json": body}
        needed = pricing.cost(body["model"], body.get("size"), float(body["seconds"]))
        video = await self._call("POST", "/v1/videos", account, credits_needed=needed, submit=True, **request)
        if not isinstance(video.get("id"), str) or not video["id"]:
            raise ProviderError(
                f"{self.provider_id}: the API accepted the job without an id",
                error_code="provider_bad_response",
                retryable=False,
            )
        return GenerationResult(
            provider_job_id=video["id"],
            status=STATUS_MAP.get(video.get("status"), ProviderStatus.PENDING),
            metadata={
                "remote_status": video.get("status"),
                **{k: body[k] for k in ("model", "size", "seconds")},
            },
        )

    async def find_job(
        self,
        account: ProviderAccount,
        reference: str,
        operation_type: OperationType,
        params_in: dict[str, Any],
        since: float | None = None,
    ) -> str | None:
        """OpenAI's Videos API takes no idempotency key or client reference, so this is the last resort:
        the account's videos, newest first, back to `since` (less a margin for clock skew), matched on
        model, prompt, seconds and size. One match: that is the job; none: there is none; several (the
        same request twice at once): it cannot say. Without `since`, absence would prove nothing."""
        if since is None:
            raise NotImplementedError(f"{self.provider_id}: no submit time to search back to")
        mapped = params_in if "seconds" in params_in else self.map_parameters(operation_type, params_in)
        wanted = {k: str(mapped[k]) for k in params.REMOTE_FIELDS if mapped.get(k) is not None}
        matches: list[str] = []
        after: str | None = None
        for _ in range(FIND_PAGES):
            query = {"limit": 100, "order": "desc", **({"after": after} if after else {})}
            page = await self._call("GET", "/v1/videos", account, params=query)
            videos = page.get("data")
            if not isinstance(videos, list):
                raise ProviderError(
                    f"{self.provider_id}: video list without data", error_code="provider_bad_response"
                )
            older = False
            for video in videos:
                if float(video.get("created_at") or 0) < since - CLOCK_SKEW_S:
                    older = True
                    break
                if all(str(video.get(k)) == v for k, v in wanted.items()):
                    matches.append(str(video["id"]))
            if older or not page.get("has_more"):
                break
            after = page.get("last_id")
        else:
            raise ProviderError(
                f"{self.provider_id}: too many recent videos to search", error_code="provider_generic"
            )
        if len(matches) > 1:
            raise ProviderError(
                f"{self.provider_id}: {len(matches)} recent videos match the request; "
                "cannot tell which is this generation's",
                error_code="provider_generic",
            )
        return matches[0] if matches else None

    async def _source_image(self, mapped: dict[str, Any]) -> tuple[bytes, str]:
        """The first-frame image's bytes and file name: the prepared local file, else fetched here."""
        async with local_source(
            self.provider_id,
            mapped.get("image_url"),
            mapped.get("local_image_path"),
            needed_by="image_to_video",
        ) as path:
            return read_local_file(self.provider_id, path), Path(path).name

    def _image_size(self, data: bytes, model: str, size: str | None) -> tuple[str, str]:
        """(mime type, video size). The service wants the image to have exactly the video's size, so a
        missing size is taken from the image and a mismatch is refused here, before an upload."""
        info = image_info(data)
        if info is None:
            raise InvalidParametersError(f"{self.provider_id}: the input image must be a PNG, JPEG or WebP")
        mime, width, height = info
        if size is None:
            size = params.size_for_image(model, width, height)
            if size is None:
                sizes = ", ".join(params.MODEL_SIZES[model])
                raise InvalidParametersError(
                    f"{self.provider_id}: the input image is {width}x{height}; {model} needs one of {sizes}"
                )
        elif size != f"{width}x{height}":
            raise InvalidParametersError(
                f"{self.provider_id}: the input image is {width}x{height} but size is {size}; they must match"
            )
        return mime, size

    # -- poll, download, cancel -----------------------------------------------------------------
    async def check_status(
        self, account: ProviderAccount, provider_job_id: str, operation_type: OperationType | None = None
    ) -> ProviderStatusResult:
        video = await self._call("GET", self._video_path(provider_job_id), account, job=True)
        return to_status(self.provider_id, video, self._content_url(provider_job_id))

    async def download_content(
        self, account: ProviderAccount, provider_job_id: str, variant: str = "video"
    ) -> tuple[bytes, str]:
        """(bytes, content type) of a finished video's asset: `video`, `thumbnail` or `spritesheet`."""
        if variant not in VARIANTS:
            raise InvalidParametersError(f"{self.provider_id}: variant must be one of {list(VARIANTS)}")
        resp = await self._send(
            "GET", f"{self._video_path(provider_job_id)}/content", account, params={"variant": variant}
        )
        if resp.status_code >= 400:
            raise map_error(self.provider_id, resp, self._secrets(account), job=True)
        return resp.content, resp.headers.get("content-type", "application/octet-stream")

    async def fetch_result(
        self, account: ProviderAccount, provider_job_id: str, variant: str = "result"
    ) -> tuple[bytes, str] | None:
        """Sora's content URLs need the API key, so results are fetched here (the gateway proxies them)."""
        return await self.download_content(
            account, provider_job_id, "video" if variant == "result" else variant
        )

    async def cancel(self, account: ProviderAccount, provider_job_id: str) -> bool:
        """`DELETE /v1/videos/{id}`: True when the video and its assets are gone. The API deletes only
        completed or failed videos; a render still queued or in progress cannot be stopped (False)."""
        resp = await self._send("DELETE", self._video_path(provider_job_id), account)
        if resp.status_code == 200:
            try:
                return bool(resp.json().get("deleted", True))
            except (ValueError, AttributeError):
                return True
        if resp.status_code in (400, 409):  # still rendering: the service refuses to delete it
            return False
        raise map_error(self.provider_id, resp, self._secrets(account), job=True)

    # -- credits and accounts -------------------------------------------------------------------
    def estimate_credits(
        self, operation_type: OperationType, params_in: dict[str, Any]
    ) -> dict[str, int] | None:
        sized_by_image = operation_type is OperationType.IMAGE_TO_VIDEO and not params_in.get("size")
        return {self.manifest.credit_types[0]: pricing.estimate(params_in, sized_by_image=sized_by_image)}

    def compute_actual_credits(
        self, generation: GenerationContext, status: ProviderStatusResult, estimate: dict[str, int]
    ) -> dict[str, int]:
        # OpenAI bills the rendered seconds at the rate of the model and size that ran (the status says
        # which; the poller's context carries no params).
        size = status.metadata.get("size") or (
            f"{status.width}x{status.height}" if status.width and status.height else None
        )
        actual = pricing.cost(status.metadata.get("model"), size, status.duration_sec)
        if actual is None:
            return dict(estimate)
        return {next(iter(estimate), self.manifest.credit_types[0]): actual}

    async def extract_account_data(
        self, raw_data: dict[str, Any], *, fallback_email: str | None = None
    ) -> dict:
        return auth.extract_account_data(self.provider_id, raw_data, fallback_email)

    # -- HTTP -----------------------------------------------------------------------------------
    def _video_path(self, provider_job_id: str) -> str:
        return f"/v1/videos/{quote(provider_job_id, safe='')}"

    def _content_url(self, provider_job_id: str) -> str:
        return f"{self.base_url.rstrip('/')}{self._video_path(provider_job_id)}/content"

    def _secrets(self, account: ProviderAccount) -> tuple[str, ...]:
        try:
            return auth.request_auth(self.provider_id, account)[1]
        except ProviderError:
            return ()

    async def _send(self, method: str, path: str, account: ProviderAccount, **kw: Any) -> httpx.Response:
        headers, secrets = auth.request_auth(self.provider_id, account)
        try:
            return await self.http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as exc:  # includes timeouts
            raise unreachable(self.provider_id, self.base_url, exc, secrets) from exc

    async def _call(
        self,
        method: str,
        path: str,
        account: ProviderAccount,
        *,
        job: bool = False,
        credits_needed: int | None = None,
        submit: bool = False,
        **kw: Any,
    ) -> dict[str, Any]:
        """Send; raise the SDK error matching a failure; return the JSON object. `job`: 404 = no such job.
        `submit`: a failure after which the video may exist says so (`maybe_accepted`): a 5xx other than
        503 (OpenAI answers 503 when it is overloaded, before accepting), or a 2xx without a JSON object."""
        resp = await self._send(method, path, account, **kw)
        return json_object(
            resp,
            self.provider_id,
            f"{method} {path}",
            submit=submit,
            error_for=lambda r: map_error(
                self.provider_id, r, self._secrets(account), job=job, credits_needed=credits_needed
            ),
        )
