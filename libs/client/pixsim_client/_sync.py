"""`PixSim`: the synchronous client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any, Self

import httpx

from . import _base
from ._base import Config, FileInput
from ._errors import APIConnectionError, APITimeoutError, GenerationError, status_error
from ._models import Asset, Event, Generation, GenerationPage, SSEDecoder


class PixSim:
    """A client of the PixSim API.

    `api_key` defaults to `PIXSIM_API_KEY`, `base_url` to `PIXSIM_API_URL` (else http://127.0.0.1:8000).
    Requests that fail with 408/429/5xx or a connection error are retried `max_retries` times, waiting as
    the server's `Retry-After` says (else with exponential backoff)."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = _base.DEFAULT_TIMEOUT,
        max_retries: int = _base.DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._config = Config(api_key, base_url, max_retries)
        self.base_url = self._config.base_url
        self._client = http_client or httpx.Client(timeout=timeout)
        self._client.base_url = httpx.URL(self.base_url)
        self._client.headers.update(self._config.headers())
        self._sleep = time.sleep
        self.generations = Generations(self)
        self.assets = Assets(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def run(
        self,
        provider: str,
        operation: str,
        params: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Generation:
        """Submit a generation and wait for it to end; the finished generation. Raises `GenerationError`
        when it ends failed, filtered or cancelled. A retried submission never makes a second generation:
        every call sends an `Idempotency-Key` (a new one unless you give yours)."""
        key = idempotency_key or f"run-{uuid.uuid4()}"
        created = self.generations.create(provider, operation, params, idempotency_key=key, **options)
        for event in self.generations.stream(created.id):
            if event.terminal:
                break
        final = self.generations.wait(created.id)
        if final.status != "completed":
            raise GenerationError(final)
        return final

    def stream(self, generation_id: str, *, last_event_id: str | None = None) -> Iterator[Event]:
        """Same as `generations.stream`."""
        return self.generations.stream(generation_id, last_event_id=last_event_id)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request to `/api/v1{path}` with retries; raises the typed error for a 4xx/5xx answer."""
        attempt = 0
        while True:
            attempt += 1
            last = attempt > self._config.max_retries
            try:
                response = self._client.request(method, f"{_base.API_PREFIX}{path}", **kwargs)
            except httpx.TimeoutException as exc:
                if last:
                    raise APITimeoutError(f"{method} {path} timed out", request=exc.request) from exc
                self._sleep(_base.retry_delay(attempt))
                continue
            except httpx.TransportError as exc:
                if last:
                    raise APIConnectionError(f"cannot reach {self.base_url}: {exc!r}") from exc
                self._sleep(_base.retry_delay(attempt))
                continue
            if response.status_code < 400:
                return response
            if not last and _base.should_retry(response):
                self._sleep(_base.retry_delay(attempt, response))
                continue
            raise status_error(response)


class Generations:
    def __init__(self, client: PixSim) -> None:
        self._client = client

    def create(
        self,
        provider: str,
        operation: str,
        params: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Generation:
        """Request a generation (202). `options`: `account_id`, `priority`, `webhook_url`,
        `webhook_events_filter`, ... A new `Idempotency-Key` is sent unless you give one."""
        headers = {"Idempotency-Key": idempotency_key or f"create-{uuid.uuid4()}"}
        body = _base.generation_body(provider, operation, params, options)
        return Generation.from_json(
            self._client.request("POST", "/generations", json=body, headers=headers).json()
        )

    def get(self, generation_id: str) -> Generation:
        return Generation.from_json(self._client.request("GET", f"/generations/{generation_id}").json())

    def list(
        self,
        *,
        status: str | None = None,
        provider_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> GenerationPage:
        """One page, newest first; pass `next_cursor` back as `cursor` for the next."""
        body = self._client.request(
            "GET", "/generations", params=_base.list_query(status, provider_id, limit, cursor)
        ).json()
        return GenerationPage([Generation.from_json(g) for g in body["items"]], body.get("next_cursor"))

    def cancel(self, generation_id: str) -> Generation:
        return Generation.from_json(
            self._client.request("POST", f"/generations/{generation_id}/cancel").json()
        )

    def content(self, generation_id: str, variant: str = "result") -> bytes:
        """The result's (or thumbnail's) bytes."""
        return self._client.request(
            "GET", f"/generations/{generation_id}/content", params={"variant": variant}, follow_redirects=True
        ).content

    def wait(self, generation_id: str, *, timeout: float = 30.0, interval: float = 0.2) -> Generation:
        """The generation once it has ended (polling)."""
        deadline = time.monotonic() + timeout
        while not (generation := self.get(generation_id)).done and time.monotonic() < deadline:
            self._client._sleep(interval)
        return generation

    def stream(self, generation_id: str, *, last_event_id: str | None = None) -> Iterator[Event]:
        """The generation's events from the start (or after `last_event_id`) until it ends. A dropped
        connection is reopened with `Last-Event-ID`, so no event is lost or repeated."""
        client, failures = self._client, 0
        path = f"{_base.API_PREFIX}/generations/{generation_id}/events"
        while True:
            headers = {
                "Accept": "text/event-stream",
                **({"Last-Event-ID": last_event_id} if last_event_id else {}),
            }
            try:
                with client._client.stream(
                    "GET", path, headers=headers, timeout=_base.STREAM_TIMEOUT
                ) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        if not (_base.should_retry(resp) and failures < client._config.max_retries):
                            raise status_error(resp)
                    else:
                        decoder, got = SSEDecoder(), 0
                        for line in resp.iter_lines():
                            if (event := decoder.feed(line)) is None:
                                continue
                            failures, got = 0, got + 1
                            last_event_id = event.id or last_event_id
                            yield event
                            if event.terminal:
                                return
                        # Closed with nothing after `last_event_id`: it was the last one if the job has ended.
                        if not got and last_event_id and (self.get(generation_id)).done:
                            return
            except httpx.TransportError as exc:
                if failures >= client._config.max_retries:
                    raise APIConnectionError(f"event stream of {generation_id} broke: {exc!r}") from exc
            failures += 1  # an error, or the server closed the stream before the end: reconnect
            if failures > client._config.max_retries + 1:
                raise APIConnectionError(f"event stream of {generation_id} keeps closing early")
            client._sleep(_base.retry_delay(failures))


class Assets:
    def __init__(self, client: PixSim) -> None:
        self._client = client

    def upload(
        self, file: FileInput, *, filename: str | None = None, content_type: str | None = None
    ) -> Asset:
        """Upload an image, video or audio file (a path, bytes or a binary file); use `asset.url`
        (`asset://<id>`) as a media parameter of your generations."""
        part = _base.file_part(file, filename, content_type)
        return Asset.from_json(self._client.request("POST", "/assets", files={"file": part}).json())
