"""One account's view of Pixverse's two HTTP surfaces, over the provider's shared httpx client.

- WebAPI (`/creative_platform/...`): the browser session. Headers `token: <jwt>`, the session's
  `ai-trace-id` / `ai-anonymous-id` (reused so Pixverse sees the same session as the browser and does
  not answer "logged in elsewhere"), `x-platform: Web`, Origin/Referer, and `refresh: credit` on
  generation calls (Pixverse allocates credits on it).
- OpenAPI (`/openapi/v2/...`): the API key. Headers `API-KEY` and a fresh `Ai-trace-id` per request.

Every answer is `{"ErrCode", "ErrMsg", "Resp"}`, mostly with HTTP 200: a non-zero ErrCode is an error.

A submit (`submit=True`) that fails after the request may have reached Pixverse says so
(`maybe_accepted`): a timeout or a reset after sending, an HTTP 5xx other than 503, or a 2xx without a
readable envelope. A non-zero ErrCode is Pixverse's own answer that it refused, so it never is; nor is
any other call (an upload, a list, a poll) that fails.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from pixsim_provider_sdk import (
    AuthenticationError,
    ProviderAccount,
    ProviderError,
    may_have_created,
    scrub,
    unreachable,
)

from .errors import error_for_code, error_for_http

WEB_ORIGIN = "https://app.pixverse.ai"
USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0"


@dataclass(frozen=True)
class Session:
    """The credentials of one account (from `extract_account_data`). Never printed."""

    jwt: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    trace_id: str = ""
    anonymous_id: str = ""

    @classmethod
    def of(cls, account: ProviderAccount) -> Session:
        creds = account.credentials or {}
        return cls(
            jwt=creds.get("jwt_token") or None,
            api_key=creds.get("openapi_key") or None,
            trace_id=creds.get("trace_id") or str(uuid.uuid4()),
            anonymous_id=creds.get("anonymous_id") or str(uuid.uuid4()),
        )

    def scrub(self, text: str) -> str:
        """`text` with every credential replaced, in case a server or exception echoes one."""
        return scrub(text, (self.jwt, self.api_key))


class PixverseClient:
    """Sends one account's requests and turns Pixverse's answers into data or SDK errors."""

    def __init__(self, http: httpx.AsyncClient, session: Session, account_id: str) -> None:
        self.http = http
        self.session = session
        self.account_id = account_id

    async def web(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        refresh: bool = False,
        polling: bool = False,
        submit: bool = False,
    ) -> dict[str, Any]:
        """A WebAPI call; returns `Resp`. `refresh`: a generation call (sends `refresh: credit`);
        `submit`: the call that creates a job (its ambiguous failures say `maybe_accepted`)."""
        if not self.session.jwt:
            raise AuthenticationError(
                f"pixverse: account {self.account_id} has no browser session (jwt_token): "
                "capture one, or submit with api_method=openapi"
            )
        headers = {
            "token": self.session.jwt,
            "ai-trace-id": self.session.trace_id,
            "ai-anonymous-id": self.session.anonymous_id,
            "x-platform": "Web",
            "Origin": WEB_ORIGIN,
            "Referer": f"{WEB_ORIGIN}/",
            "User-Agent": USER_AGENT,
        }
        if refresh:
            headers["refresh"] = "credit"
        return await self._send(method, path, headers, polling, submit, json=json)

    async def openapi(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        files: Any = None,
        polling: bool = False,
        submit: bool = False,
    ) -> dict[str, Any]:
        """An OpenAPI call with the account's API key; returns `Resp` (`submit`: as in `web`)."""
        if not self.session.api_key:
            raise AuthenticationError(
                f"pixverse: account {self.account_id} has no OpenAPI key (openapi_key): add one to it"
            )
        headers = {
            "API-KEY": self.session.api_key,
            "Ai-trace-id": str(uuid.uuid4()),  # Pixverse wants a new trace id per OpenAPI request
            "ai-anonymous-id": self.session.anonymous_id,
        }
        return await self._send(method, path, headers, polling, submit, json=json, files=files)

    async def _send(
        self, method: str, path: str, headers: dict, polling: bool, submit: bool, **kw: Any
    ) -> dict[str, Any]:
        kw = {k: v for k, v in kw.items() if v is not None}
        try:
            resp = await self.http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as exc:  # connect errors and timeouts
            error = unreachable(
                "pixverse", str(self.http.base_url), exc, (self.session.jwt, self.session.api_key)
            )
            # Only a submit can have made a job; and only if the request may have left (not a refused
            # connection, a DNS failure or a connect timeout).
            error.maybe_accepted = submit and error.maybe_received
            raise error from exc
        body = _json(resp)
        if resp.status_code == 429 or (resp.status_code >= 400 and "ErrCode" not in body):
            detail = body.get("ErrMsg") or resp.reason_phrase or "error"
            error = error_for_http(
                resp.status_code, str(detail), resp.headers.get("Retry-After"), polling=polling
            )
            # A 5xx may come after the job was made (a gateway that lost the answer); 503 (overloaded),
            # 429 and every 4xx are answered before anything is created.
            error.maybe_accepted = submit and may_have_created(resp.status_code)
            raise self._scrubbed(error)
        if "ErrCode" not in body:
            raise ProviderError(
                f"pixverse: {method} {path} answered HTTP {resp.status_code} without a Pixverse envelope",
                error_code="provider_bad_response",
                maybe_accepted=submit and resp.is_success,
            )
        try:
            err_code = int(body.get("ErrCode") or 0)
        except (TypeError, ValueError):
            err_code = -1
        if err_code != 0:
            raise self._scrubbed(error_for_code(err_code, str(body.get("ErrMsg") or "")))
        data = body.get("Resp")
        return data if isinstance(data, dict) else {}

    def _scrubbed(self, error: ProviderError) -> ProviderError:
        clean = self.session.scrub(error.message)
        if clean != error.message:
            error.message = clean
            error.args = (clean,)
        return error


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
