"""Everything a PixSim provider plugin needs, from one import."""

from pixsim_contracts import OperationType, ProviderKind, ProviderManifest, ProviderStatus

from .base import REFERENCE_PARAM, Provider, ResolveSourceFn
from .errors import (
    AuthenticationError,
    ConcurrentLimitError,
    ContentFilteredError,
    InvalidParametersError,
    JobNotFoundError,
    ProviderError,
    ProviderLoadError,
    ProviderNotFoundError,
    ProviderUnavailableError,
    ProviderUnreachableError,
    QuotaExceededError,
    RateLimitError,
    SourceRejected,
    UnsupportedOperationError,
)
from .files import ImageUrlSource, local_source, map_and_prepare, prepare_image_source, read_local_file
from .http_errors import (
    error_for_status,
    json_object,
    may_have_created,
    parse_retry_after,
    scrub,
    secret_values,
    unreachable,
)
from .media_types import image_info, sniff, sniff_image
from .params import apply_defaults, validate_params
from .registry import ENTRY_POINT_GROUP, DisabledProvider, LoadedProvider, Registry, discover
from .remote_status import percent_progress, status_of
from .results import GenerationContext, GenerationResult, ProviderAccount, ProviderStatusResult
from .safe_fetch import FetchPolicy

__all__ = [
    "ENTRY_POINT_GROUP",
    "REFERENCE_PARAM",
    "AuthenticationError",
    "ConcurrentLimitError",
    "ContentFilteredError",
    "DisabledProvider",
    "FetchPolicy",
    "GenerationContext",
    "GenerationResult",
    "ImageUrlSource",
    "InvalidParametersError",
    "JobNotFoundError",
    "LoadedProvider",
    "OperationType",
    "Provider",
    "ProviderAccount",
    "ProviderError",
    "ProviderKind",
    "ProviderLoadError",
    "ProviderManifest",
    "ProviderNotFoundError",
    "ProviderStatus",
    "ProviderStatusResult",
    "ProviderUnavailableError",
    "ProviderUnreachableError",
    "QuotaExceededError",
    "RateLimitError",
    "Registry",
    "ResolveSourceFn",
    "SourceRejected",
    "UnsupportedOperationError",
    "apply_defaults",
    "discover",
    "error_for_status",
    "image_info",
    "json_object",
    "local_source",
    "map_and_prepare",
    "may_have_created",
    "parse_retry_after",
    "percent_progress",
    "prepare_image_source",
    "read_local_file",
    "scrub",
    "secret_values",
    "sniff",
    "sniff_image",
    "status_of",
    "unreachable",
    "validate_params",
]
