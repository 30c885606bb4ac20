"""The Pixverse adapter: video (t2v, i2v, extend, transition, fusion) and images (t2i, i2i).

Jobs run on the WebAPI with the account's browser session by default (`web` credits), or on the
OpenAPI with its API key when `api_method=openapi` (`openapi` credits). The protocol details live in
the helper modules: client (HTTP and envelopes), errors (ErrCode mapping), params/spec (parameters),
payloads (request bodies), sources (uploads), status (status codes), pricing, account (captures).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import httpx
from pixsim_provider_sdk import (
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
    ResolveSourceFn,
)
from pixsim_provider_sdk.files import cleanup_temp_paths

from . import account as account_data
from . import params as mapping
from . import payloads, pricing
from .catalog import IMAGE_OPERATIONS
from .client import PixverseClient, Session
from .sources import needs_local_file, resolve_inputs, upload_file
from .spec import build_parameter_spec
from .status import to_result

#: The WebAPI has no per-id status call: we page through the account's newest media instead.
LIST_PAGE_SIZE = 100
LIST_PAGES = 5
#: `find_job` pages back to the submit's start less this margin for clock skew (Pixverse's clock and
#: ours; its `create_time` has whole seconds).
CLOCK_SKEW_S = 30.0
#: The `create_mode` Pixverse records for each video operation (its personal list shows it).
CREATE_MODES = {
    OperationType.TEXT_TO_VIDEO: "t2v",
    OperationType.IMAGE_TO_VIDEO: "i2v",
    OperationType.VIDEO_EXTEND: "extend",
    OperationType.VIDEO_TRANSITION: "transition",
    OperationType.FUSION: "fusion",
}
#: Operations whose price depends on the rendered length (compute_actual_credits).
DURATION_PRICED = frozenset(
    {
        OperationType.TEXT_TO_VIDEO,
        OperationType.IMAGE_TO_VIDEO,
        OperationType.VIDEO_EXTEND,
        OperationType.FUSION,
    }
)


class PixverseProvider(Provider):
    """Pixverse (app.pixverse.ai): WebAPI via a captured browser session, OpenAPI via an API key."""

    default_base_url = "https://app-api.pixverse.ai"

    @property
    def supported_operations(self) -> list[OperationType]:
        return [
            OperationType.TEXT_TO_VIDEO,
            OperationType.IMAGE_TO_VIDEO,
            OperationType.VIDEO_EXTEND,
            OperationType.VIDEO_TRANSITION,
            OperationType.FUSION,
            OperationType.TEXT_TO_IMAGE,
            OperationType.IMAGE_TO_IMAGE,
        ]

    def get_operation_parameter_spec(self) -> dict[str, dict[str, Any]]:
        return build_parameter_spec()

    def map_parameters(self, operation_type: OperationType, params: dict[str, Any]) -> dict[str, Any]:
        self.validate_operation(operation_type)
        return mapping.map_parameters(operation_type, params)

    # -- file preparation -----------------------------------------------------------------------
    def requires_file_preparation(self) -> bool:
        return True  # a no-op for operations without image sources

    async def prepare_execution_params(
        self, generation: GenerationContext, mapped_params: dict[str, Any], resolve_source_fn: ResolveSourceFn
    ) -> dict[str, Any]:
        """Fetch every source Pixverse cannot use as is into a local file (uploaded by `execute`).
        The files are listed in `_temp_paths`; on failure the ones fetched so far are deleted here."""
        api = mapped_params.get("api_method", "webapi")
        local: dict[str, str] = {}
        temp_paths: list[str] = []
        listed = "image_urls" in (generation.params or {})  # the sources came from image_urls, else image_url
        try:
            for index, source in enumerate(mapped_params.get("sources") or []):
                if needs_local_file(source, api, self.base_url):
                    param = f"image_urls[{index}]" if listed else "image_url"
                    path, temps = await resolve_source_fn(source, generation.user_id, ".png", param=param)
                    temp_paths.extend(temps)
                    local[str(index)] = path
        except httpx.TransportError as exc:
            cleanup_temp_paths(temp_paths)
            raise ProviderUnavailableError(f"pixverse: cannot fetch a source: {type(exc).__name__}") from exc
        except (OSError, ValueError, httpx.HTTPError) as exc:
            cleanup_temp_paths(temp_paths)
            raise InvalidParametersError(f"pixverse: cannot read a source: {exc}") from exc
        except BaseException:  # cancelled, or anything else: still leave no file behind
            cleanup_temp_paths(temp_paths)
            raise
        return {
            **mapped_params,
            "local_sources": local,
            "_temp_paths": [*mapped_params.get("_temp_paths", []), *temp_paths],
        }

    # -- submit ---------------------------------------------------------------------------------
    async def execute(
        self, operation_type: OperationType, account: ProviderAccount, params: dict[str, Any]
    ) -> GenerationResult:
        self.validate_operation(operation_type)
        # The dispatcher passes mapped params; scripts and tests may pass canonical ones.
        mapped = params if "options" in params else self.map_parameters(operation_type, params)
        client = self._session_client(account)
        inputs = await resolve_inputs(client, mapped, self.base_url)
        path, body = payloads.build(operation_type, mapped, inputs, self.base_url)
        openapi = mapped["api_method"] == "openapi"
        # Pixverse takes no idempotency key or client reference (`_reference` is never sent; the body is
        # built from the mapped fields only): a lost answer is resolved by `find_job`.
        if openapi:
            resp = await client.openapi("POST", path, json=body, submit=True)
        else:
            resp = await client.web("POST", path, json=body, refresh=True, submit=True)
        job_id = _new_id(resp, image=operation_type in IMAGE_OPERATIONS)
        return GenerationResult(
            provider_job_id=f"{mapping.OPENAPI_JOB_PREFIX}{job_id}" if openapi else str(job_id),
            status=ProviderStatus.PROCESSING,
            metadata={
                "api_method": mapped["api_method"],
                "model": mapped["options"].get("model"),
                "quality": mapped["options"].get("quality"),
                "planned_duration_sec": mapped["options"].get("duration")
                or sum(mapped.get("durations") or []),
            },
        )

    async def find_job(
        self,
        account: ProviderAccount,
        reference: str,
        operation_type: OperationType,
        params: dict[str, Any],
        since: float | None = None,
    ) -> str | None:
        """Pixverse takes no client reference, so this is the last resort PixSim7 also used: the WebAPI's
        personal list (`POST /creative_platform/{video,image}/list/personal`, newest first), back to
        `since` less CLOCK_SKEW_S, matched on what was sent: the prompt, model, quality, create mode
        and duration of a video, and the seed and aspect ratio when they were given. One match is the
        job; none proves there is none; several (the same request twice at once) cannot be told apart.

        The OpenAPI has no listing (only `result/{id}`), so an OpenAPI submit cannot be looked up."""
        self.validate_operation(operation_type)
        mapped = params if "options" in params else self.map_parameters(operation_type, params)
        if mapped.get("api_method") == "openapi":
            raise NotImplementedError("pixverse: the OpenAPI cannot list an account's jobs")
        if since is None:
            raise NotImplementedError("pixverse: no submit time to search back to")
        image = operation_type in IMAGE_OPERATIONS
        kind = "image" if image else "video"
        wanted = _fingerprint(operation_type, mapped)
        cutoff = since - CLOCK_SKEW_S
        client = self._session_client(account)
        matches: list[str] = []
        for page in range(LIST_PAGES):
            items = await self._list_page(client, kind, page * LIST_PAGE_SIZE)
            older = False
            for item in items:
                made = _created_at(item.get("create_time"))
                if made is None:
                    raise ProviderError(
                        f"pixverse: a listed {kind} has no readable create_time",
                        error_code="provider_bad_response",
                    )
                if made < cutoff:
                    older = True
                    break
                if all(str(item.get(k)) == v for k, v in wanted.items()):
                    matches.append(str(item.get(f"{kind}_id")))
            if older or len(items) < LIST_PAGE_SIZE:
                break
        else:
            raise ProviderError(f"pixverse: too many recent {kind}s to search", error_code="provider_generic")
        if len(matches) > 1:
            raise ProviderError(
                f"pixverse: {len(matches)} recent {kind}s match the request; cannot tell which is this job's",
                error_code="provider_generic",
            )
        return matches[0] if matches else None

    # -- poll -----------------------------------------------------------------------------------
    async def check_status(
        self, account: ProviderAccount, provider_job_id: str, operation_type: OperationType | None = None
    ) -> ProviderStatusResult:
        image = operation_type in IMAGE_OPERATIONS
        openapi = provider_job_id.startswith(mapping.OPENAPI_JOB_PREFIX)
        media_id = provider_job_id.removeprefix(mapping.OPENAPI_JOB_PREFIX)
        if not media_id.isdigit():
            raise JobNotFoundError(f"pixverse: {provider_job_id!r} is not a Pixverse job id")
        client = self._session_client(account)
        kind = "image" if image else "video"
        if openapi:
            record = await client.openapi("GET", f"/openapi/v2/{kind}/result/{media_id}", polling=True)
            if not record:
                raise JobNotFoundError(f"pixverse: no {kind} {media_id} on this API key")
        else:
            record = await self._find_in_list(client, kind, int(media_id))
        return to_result(record, image=image)

    async def _list_page(self, client: PixverseClient, kind: str, offset: int) -> list[dict[str, Any]]:
        """One page of the account's newest videos or images (`list/personal`)."""
        resp = await client.web(
            "POST",
            f"/creative_platform/{kind}/list/personal",
            polling=True,
            json={
                "offset": offset,
                "limit": LIST_PAGE_SIZE,
                "polling": True,
                "filter": {},
                "web_offset": offset,
                "app_offset": 0,
            },
        )
        items = resp.get("data") or []
        if not isinstance(items, list):
            raise ProviderError(f"pixverse: the {kind} list has no data", error_code="provider_bad_response")
        return [item for item in items if isinstance(item, dict)]

    async def _find_in_list(self, client: PixverseClient, kind: str, media_id: int) -> dict[str, Any]:
        for page in range(LIST_PAGES):
            items = await self._list_page(client, kind, page * LIST_PAGE_SIZE)
            for item in items:
                if str(item.get(f"{kind}_id")) == str(media_id):
                    return item
            if len(items) < LIST_PAGE_SIZE:
                break
        raise JobNotFoundError(
            f"pixverse: {kind} {media_id} is not among the account's newest {LIST_PAGES * LIST_PAGE_SIZE}"
        )

    # -- credits --------------------------------------------------------------------------------
    def estimate_credits(
        self, operation_type: OperationType, params: dict[str, Any]
    ) -> dict[str, int] | None:
        """`{"web" | "openapi": credits}` from Pixverse's price list; None when it has no price."""
        try:
            mapped = params if "options" in params else self.map_parameters(operation_type, params)
        except ProviderError:
            return None  # execute reports the same problem, with its reason
        cost = mapped.get("credit_change")
        return None if cost is None else {mapping.credit_type_for(mapped): int(cost)}

    def compute_actual_credits(
        self, generation: GenerationContext, status: ProviderStatusResult, estimate: dict[str, int]
    ) -> dict[str, int]:
        """Video priced per second is re-priced with its rendered length; the rest costs the estimate."""
        meta = status.metadata or {}
        if generation.operation_type not in DURATION_PRICED or not status.duration_sec or not estimate:
            return dict(estimate)
        credit_type = next(iter(estimate))
        try:
            cost = pricing.video_cost(
                api=credit_type,
                model=meta["model"],
                quality=meta["quality"],
                duration=max(1, math.ceil(status.duration_sec - 1e-6)),
                multi_shot=bool(meta.get("multi_shot")),
                audio=bool(meta.get("audio")),
            )
        except (KeyError, ValueError, TypeError):
            return dict(estimate)  # the record did not say enough to re-price it
        return {credit_type: cost}

    # -- accounts -------------------------------------------------------------------------------
    async def extract_account_data(
        self, raw_data: dict[str, Any], *, fallback_email: str | None = None
    ) -> dict:
        """A captured session (`_ai_token` cookie / jwt_token) and/or an OpenAPI key -> credentials."""
        return account_data.extract(raw_data, fallback_email)

    async def upload_asset(self, account: ProviderAccount, file_path: str) -> dict[str, Any]:
        """Upload a local image through the OpenAPI; returns `{"id", "url", "path"}`."""
        return await upload_file(self._session_client(account), file_path)

    def _session_client(self, account: ProviderAccount) -> PixverseClient:
        return PixverseClient(self.http, Session.of(account), account.id)


def _new_id(resp: dict[str, Any], *, image: bool) -> int | str:
    """The id Pixverse gave the new video/image. A success (ErrCode 0) without one is a broken answer
    after which the job may exist (`maybe_accepted`)."""
    keys = ("image_id", "success_ids") if image else ("video_id", "video_ids")
    value = resp.get(keys[0])
    if not value and isinstance(resp.get(keys[1]), list) and resp[keys[1]]:
        value = resp[keys[1]][0]
    if not value or str(value) == "unknown":
        raise ProviderError(
            "pixverse: the submit answer has no media id",
            error_code="provider_bad_response",
            retryable=False,
            maybe_accepted=True,
        )
    return value


def _fingerprint(op: OperationType, mapped: dict[str, Any]) -> dict[str, str]:
    """The fields of a personal-list record that must equal what this submit sent, as strings."""
    options = mapped.get("options") or {}
    prompts = mapped.get("prompts") or []
    prompt = prompts[0] if op is OperationType.VIDEO_TRANSITION and prompts else mapped.get("prompt")
    wanted: dict[str, Any] = {
        "prompt": prompt,
        "model": options.get("model"),
        "quality": options.get("quality"),
    }
    if op in CREATE_MODES:
        wanted["create_mode"] = CREATE_MODES[op]
    if op in DURATION_PRICED:
        wanted["duration"] = options.get("duration")
    if options.get("seed"):  # 0 or absent: Pixverse picks one
        wanted["seed"] = options["seed"]
    if options.get("aspect_ratio") and op is not OperationType.VIDEO_EXTEND:
        wanted["aspect_ratio"] = options["aspect_ratio"]
    return {k: str(v) for k, v in wanted.items() if v is not None}


def _created_at(value: Any) -> float | None:
    """Epoch seconds of a record's `create_time` (ISO 8601; UTC when it names no zone)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        made = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (made if made.tzinfo else made.replace(tzinfo=UTC)).timestamp()
