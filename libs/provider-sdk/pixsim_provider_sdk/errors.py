"""Errors a provider adapter raises. Each carries a stable `error_code` and a `retryable` flag.

The dispatcher and poller decide from these alone (never from message text): retryable errors are
retried with backoff, the others end the job with their code.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A provider call failed. `retryable=True` means the same call may succeed later."""

    error_code: str = "provider_generic"
    retryable: bool = True
    #: Raised by `execute`: the provider may have accepted the job anyway (a timeout or a reset after the
    #: request was sent, a 2xx with an unreadable body, a 5xx where the job may exist). The dispatcher
    #: then asks the provider (`find_job`) instead of submitting again. False: provably not accepted
    #: (connection refused, DNS failure, a 4xx that says so, 429/503 before acceptance).
    maybe_accepted: bool = False

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        retryable: bool | None = None,
        maybe_accepted: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if error_code is not None:
            self.error_code = error_code
        if retryable is not None:
            self.retryable = retryable
        if maybe_accepted is not None:
            self.maybe_accepted = maybe_accepted

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, error_code={self.error_code!r})"


class AuthenticationError(ProviderError):
    """The account's session or key is invalid or expired."""

    error_code = "provider_auth"
    retryable = False


class QuotaExceededError(ProviderError):
    """The account has no credits left for this job."""

    error_code = "provider_quota"
    retryable = False

    def __init__(self, message: str, *, credits_needed: int | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.credits_needed = credits_needed


class RateLimitError(ProviderError):
    """HTTP 429 or the provider's equivalent; `retry_after` in seconds when the provider says."""

    error_code = "provider_rate_limit"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ConcurrentLimitError(ProviderError):
    """The account already runs as many jobs as the provider allows."""

    error_code = "provider_concurrent_limit"
    retryable = True


class ContentFilteredError(ProviderError):
    """The provider's content policy rejected the prompt, an input or the output."""

    error_code = "content_filtered"
    retryable = False


class ProviderUnavailableError(ProviderError):
    """The provider did not answer, or answered with a server error."""

    error_code = "provider_unavailable"
    retryable = True


class ProviderUnreachableError(ProviderUnavailableError):
    """No answer at all: the connection was refused or dropped, the host did not resolve, or the call timed
    out. The poller waits such an outage out (until the job's deadline) instead of counting it as a bad
    answer. `maybe_received`: the request may have reached the provider (a timeout or a reset after it was
    sent), so a submit may have been accepted; False only when it provably never left (no connection)."""

    def __init__(self, message: str, *, maybe_received: bool = True, **kw) -> None:
        kw.setdefault("maybe_accepted", maybe_received)
        super().__init__(message, **kw)
        self.maybe_received = maybe_received

    @classmethod
    def from_transport(cls, exc: Exception, message: str) -> ProviderUnreachableError:
        """The error for an httpx transport error: `ConnectError`/`ConnectTimeout` (and a refused pool
        slot) never sent the request; anything later (read/write timeouts, resets) may have."""
        import httpx

        never_sent = isinstance(
            exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.UnsupportedProtocol
        )
        return cls(message, maybe_received=not never_sent)


class JobNotFoundError(ProviderError):
    """The provider does not know this job id."""

    error_code = "provider_job_not_found"
    retryable = False


class InvalidParametersError(ProviderError):
    """The parameters cannot be sent to this provider as given."""

    error_code = "param_invalid"
    retryable = False


class SourceRejected(InvalidParametersError):
    """A source parameter (an image or video URL) was refused or could not be fetched: a scheme other
    than http(s), a host inside our network, too big, too slow, the wrong content type, an HTTP error.
    The message names the parameter and the reason, never the URL's credentials or query."""


class UnsupportedOperationError(ProviderError):
    error_code = "unsupported_operation"
    retryable = False


class ProviderNotFoundError(LookupError):
    """No provider with this id is registered."""


class ProviderLoadError(Exception):
    """A provider folder or package could not be loaded; the message names it."""
