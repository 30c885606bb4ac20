"""The Provider interface: the contract every provider plugin implements (guide: docs/adding-providers.md).

Required: `supported_operations`, `map_parameters`, `execute`, `check_status`.
Everything else has a sensible default and is overridden only when the provider needs it.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import Any, Protocol

import httpx
from pixsim_contracts import OperationType, ProviderManifest

from .errors import UnsupportedOperationError
from .http_pool import quicken
from .results import GenerationContext, GenerationResult, ProviderAccount, ProviderStatusResult

#: The key in `execute`'s params that carries the generation's id (see `Provider.execute`).
REFERENCE_PARAM = "_reference"


class ResolveSourceFn(Protocol):
    """`await resolve(source, user_id, default_suffix, param="image_url")` -> (local_path, temp_paths).

    Fetches an http(s) source URL safely (`pixsim_provider_sdk.safe_fetch`) into a temp file. `param`
    names the parameter in errors; `expect` is the media family it must be ("image", "video"), by
    default guessed from `param` and `default_suffix`. Raises `SourceRejected` (`param_invalid`)."""

    def __call__(
        self,
        source: str,
        user_id: str | None,
        default_suffix: str,
        /,
        *,
        param: str = ...,
        expect: str | None = ...,
    ) -> Awaitable[tuple[str, list[str]]]: ...


class Provider(ABC):
    """Base class of every provider adapter.

    The registry attaches the manifest (`self.manifest`) when it loads the plugin, so an adapter never
    repeats its id, domains or credit types.
    """

    #: Where the real remote API lives; `PIXSIM_<ID>_BASE_URL` overrides it (e.g. to point at the fake).
    default_base_url: str = ""
    #: Seconds for one HTTP call to the provider.
    http_timeout: float = 30.0

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = dict(config or {})
        self._manifest: ProviderManifest | None = None
        self._client: httpx.AsyncClient | None = None

    # -- identity -------------------------------------------------------------------------------
    @property
    def manifest(self) -> ProviderManifest:
        if self._manifest is None:
            raise RuntimeError(
                f"{type(self).__name__} has no manifest attached; load it through the registry"
            )
        return self._manifest

    def attach_manifest(self, manifest: ProviderManifest) -> None:
        self._manifest = manifest

    @property
    def provider_id(self) -> str:
        """Registry key; defaults to the manifest's id so a copied folder needs only a new manifest id."""
        return self.manifest.id

    def get_manifest(self) -> ProviderManifest:
        return self.manifest

    # -- HTTP -----------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The remote API's base URL: config `base_url`, then `PIXSIM_<ID>_BASE_URL`, then the default."""
        env = f"PIXSIM_{self.provider_id.upper().replace('-', '_')}_BASE_URL"
        return self.config.get("base_url") or os.environ.get(env) or self.default_base_url

    @property
    def http(self) -> httpx.AsyncClient:
        """One shared client per provider, with timeouts set (traced when telemetry is on), and a quick
        check of its idle connections (`http_pool`)."""
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.http_timeout)
            quicken(self._client)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- required -------------------------------------------------------------------------------
    @property
    @abstractmethod
    def supported_operations(self) -> list[OperationType]:
        """The operations this provider can run; the gateway refuses any other."""

    @abstractmethod
    def map_parameters(self, operation_type: OperationType, params: dict[str, Any]) -> dict[str, Any]:
        """Turn canonical params into the provider's payload (pure; no I/O)."""

    @abstractmethod
    async def execute(
        self, operation_type: OperationType, account: ProviderAccount, params: dict[str, Any]
    ) -> GenerationResult:
        """Submit the job with this account and return its `provider_job_id`. Raise SDK errors on failure.

        `params[REFERENCE_PARAM]` (`_reference`, never sent as such) is the generation's id: pass it as
        the provider's idempotency key or client reference where its API has one, so that a retried
        submit never creates a second job and `find_job` can find the first. An error after which the
        provider may have the job anyway must say so (`maybe_accepted=True`, see `ProviderError`)."""

    @abstractmethod
    async def check_status(
        self, account: ProviderAccount, provider_job_id: str, operation_type: OperationType | None = None
    ) -> ProviderStatusResult:
        """Poll one job once and map the provider's status to `ProviderStatus`."""

    # -- optional -------------------------------------------------------------------------------
    async def find_job(
        self,
        account: ProviderAccount,
        reference: str,
        operation_type: OperationType,
        params: dict[str, Any],
        since: float | None = None,
    ) -> str | None:
        """The provider's job id of the job submitted with this reference (`execute`'s `_reference`), or
        None when the provider proves there is none. Raise (any error) when it cannot say; the default
        cannot. Look the reference up if the API can; as a last resort, match the account's recent jobs
        by their parameters (`params` are the mapped params `execute` got) among those created after
        `since` (epoch seconds: just before the submit began; None when unknown)."""
        raise NotImplementedError(f"provider {self.provider_id!r} cannot look jobs up by reference")

    def validate_operation(self, operation_type: OperationType) -> None:
        if operation_type not in self.supported_operations:
            supported = ", ".join(op.value for op in self.supported_operations)
            raise UnsupportedOperationError(
                f"provider {self.provider_id!r} does not support {operation_type.value!r} (supported: {supported})"
            )

    def get_operation_parameter_spec(self) -> dict[str, dict[str, Any]]:
        """UI form hints and the gateway's validation rules, per operation.

        Shape: `{"text_to_video": {"parameters": [{"name", "type", "required", "enum", "default",
        "min", "max", "description"}]}}`. The default asks for a `prompt` only.
        """
        prompt = {"name": "prompt", "type": "string", "required": True}
        return {op.value: {"parameters": [prompt]} for op in self.supported_operations}

    def expected_duration_s(self, operation_type: OperationType, params: dict[str, Any]) -> float | None:
        """Seconds a job with these canonical params usually takes from submit to result, when the
        provider can tell (a documented render time, a parameter that sets it); None when it cannot.

        The poller polls first around this time and densely near it, and only as often as progress is
        worth before it. Without an answer it learns the durations of this provider's past jobs (per
        operation and the params that matter, such as `duration` and `quality`). A good answer saves calls
        and latency; a wrong one costs a few extra polls, never a result. Pure: no I/O."""
        return None

    def requires_file_preparation(self) -> bool:
        """True when `prepare_execution_params` must run before `execute`."""
        return False

    async def prepare_execution_params(
        self, generation: GenerationContext, mapped_params: dict[str, Any], resolve_source_fn: ResolveSourceFn
    ) -> dict[str, Any]:
        """Fetch sources (http(s) URLs) to local files with `resolve_source_fn`, passing `param=` so a
        refusal names the parameter. Put the files to delete in `_temp_paths`; the dispatcher removes
        them after `execute`, whatever happens."""
        return mapped_params

    def estimate_credits(
        self, operation_type: OperationType, params: dict[str, Any]
    ) -> dict[str, int] | None:
        """Credits per credit type this job should cost, reserved at submit. None: free/unknown.

        `params` are the CANONICAL params with the spec's defaults filled in (not `map_parameters`' output).
        Keys must be credit types the manifest declares and values non-negative ints (conformance checks)."""
        return None

    def compute_actual_credits(
        self, generation: GenerationContext, status: ProviderStatusResult, estimate: dict[str, int]
    ) -> dict[str, int]:
        """The actual cost at completion; defaults to the estimate. `generation.params` are the canonical
        params with defaults (as `estimate_credits` got them); `status` is the finished poll's result. If it
        raises, the job still completes and is charged the estimate (logged with this hook's name)."""
        return dict(estimate)

    def charges_filtered_jobs(self) -> bool:
        """True when the provider charges for jobs its content filter rejected during generation."""
        return False

    async def cancel(self, account: ProviderAccount, provider_job_id: str) -> bool:
        """Best-effort cancel on the provider's side; False when the provider cannot cancel."""
        return False

    async def get_credits(self, account: ProviderAccount) -> dict[str, int] | None:
        """Credits left per credit type, as the provider reports them; None when it cannot say.

        `POST /accounts/{id}/sync` publishes one `credits.synced` per declared type, and billing books the
        difference from its own figure (balance minus open reservations) as an `adjustment` ledger entry,
        never as a silent overwrite."""
        return None

    async def fetch_result(
        self, account: ProviderAccount, provider_job_id: str, variant: str = "result"
    ) -> tuple[bytes, str] | None:
        """The finished job's bytes and content type, for providers whose result URLs need the account's
        credentials (`variant`: `result` or `thumbnail`). None means the URLs are public: clients
        download them directly. The gateway serves this at `GET /generations/{id}/content`."""
        return None

    async def extract_account_data(
        self, raw_data: dict[str, Any], *, fallback_email: str | None = None
    ) -> dict:
        """Turn browser-captured `raw_data` (cookies, tokens, API keys) into `{email, credentials: {...}}`."""
        raise NotImplementedError(f"provider {self.provider_id!r} does not accept browser-captured accounts")

    async def upload_asset(self, account: ProviderAccount, file_path: str) -> dict[str, Any]:
        """Upload a local file to the provider; returns the provider's media id/url."""
        raise NotImplementedError(f"provider {self.provider_id!r} has no uploads")

    async def extract_embedded_assets(
        self, provider_video_id: str, metadata: dict | None = None
    ) -> list[dict]:
        """The source assets (images, prompts) a provider video was built from."""
        return []

    def __repr__(self) -> str:
        name = self._manifest.id if self._manifest else "?"
        return f"<{type(self).__name__} provider_id={name!r}>"
