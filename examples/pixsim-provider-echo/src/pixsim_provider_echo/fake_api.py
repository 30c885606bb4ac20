"""The Echo Images API, faked: what the adapter talks to in tests (protocol in README.md).

A task's state follows the clock: WAITING for the first 10% of its latency, WORKING with a rising
`percent`, then DONE (or ERROR / BLOCKED). Text tasks render a PNG of the asked size; image tasks
echo their source image back unchanged. Built on the SDK's `JsonFakeServer`, so it runs wherever the
SDK does, and from the command line: `python -m pixsim_provider_sdk.testing.fake_http <this dir>`.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pixsim_provider_sdk.testing.fake_http import (
    FakeRequest,
    FakeResponse,
    JsonFakeServer,
    bytes_response,
    json_response,
    route,
)
from pixsim_provider_sdk.testing.faults import SubmitFaults
from pixsim_provider_sdk.testing.media import PNG_SIGNATURE, make_png

#: The key `valid_raw_data` hands out, and a well-formed key the remote has revoked.
LIVE_KEY = "echo_live_4f9a1c7e2b6d8053"
REVOKED_KEY = "echo_live_0000revoked0000"
_FORBIDDEN = re.compile(r"\bforbidden\b", re.IGNORECASE)


def detail(status: int, detail: Any, headers: dict[str, str] | None = None) -> FakeResponse:
    """The remote's error shape (FastAPI style): `{"detail": "..."}` or `{"detail": {"type", "msg", ...}}`."""
    return json_response({"detail": detail}, status, headers)


@dataclass
class Task:
    uuid: str
    mode: str
    width: int
    height: int
    image: bytes  # the output: rendered (text) or the echoed source (image)
    outcome: str  # DONE | ERROR | BLOCKED
    latency: float
    started: float
    cancelled_at: int | None = None  # percent when cancelled

    def state(self) -> tuple[str, int]:
        if self.cancelled_at is not None:
            return "CANCELED", self.cancelled_at
        done = 1.0 if self.latency <= 0 else (time.monotonic() - self.started) / self.latency
        if done >= 1:
            return self.outcome, 100
        return ("WAITING", 0) if done < 0.1 else ("WORKING", min(99, max(1, int(done * 100))))


class EchoFakeApi(SubmitFaults, JsonFakeServer):
    """Knobs: quota (images), api_keys, and the SDK's `SubmitFaults` (latency, rate_limit_every,
    fail_submits, fail_rate, retry_after, seed). Counters and tasks are public so tests can inspect them."""

    def __init__(self, *, quota: int | None = None, api_keys: list[str] | None = None, **faults: Any) -> None:
        super().__init__()
        self.init_faults(**faults)
        self.quota = quota
        self.api_keys = list(api_keys or [LIVE_KEY])
        self.tasks: dict[str, Task] = {}

    def valid_raw_data(self) -> dict[str, Any]:
        """What a user pastes into PixSim: an API key from the Echo dashboard."""
        return {"api_key": self.api_keys[0], "email": "dev@echo.example"}

    def invalid_raw_data(self) -> dict[str, Any]:
        return {"api_key": REVOKED_KEY, "email": "dev@echo.example"}

    def _denied(self, req: FakeRequest) -> FakeResponse | None:
        if req.header("x-api-key") not in self.api_keys:
            return detail(401, "Invalid API key")
        return None

    @route("POST", r"/api/v2/images")
    def create(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req):
            return denied
        if self.fails_submit():
            return detail(503, "Upstream overloaded, try again")
        if self.rate_limits_submit():
            return detail(429, "Too many requests", {"Retry-After": str(self.retry_after)})
        body = req.json if isinstance(req.json, dict) else {}
        task, problem = self._new_task(body)
        if problem:
            return detail(422, {"type": "validation", "msg": problem})
        if _FORBIDDEN.search(body["prompt"]):
            return detail(422, {"type": "moderation", "msg": "The prompt was rejected by moderation"})
        if self.quota is not None:
            if self.quota < 1:
                return detail(402, {"type": "insufficient_balance", "msg": "Balance too low", "cost": 1})
            self.quota -= 1
        self.tasks[task.uuid] = task
        return json_response({"task": self._json(task, req.base_url)}, 202)

    @route("GET", r"/api/v2/tasks/(?P<id>[^/]+)")
    def read(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req):
            return denied
        task = self.tasks.get(req.params["id"])
        return (
            json_response({"task": self._json(task, req.base_url)}) if task else detail(404, "Task not found")
        )

    @route("DELETE", r"/api/v2/tasks/(?P<id>[^/]+)")
    def cancel(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req):
            return denied
        task = self.tasks.get(req.params["id"])
        if task is None:
            return detail(404, "Task not found")
        state, percent = task.state()
        if state in ("DONE", "ERROR", "BLOCKED"):
            return detail(409, f"Task already {state}")
        task.cancelled_at = percent
        return json_response({"task": self._json(task, req.base_url)})

    @route("GET", r"/cdn/(?P<id>[^/.]+)\.png")
    def image(self, req: FakeRequest) -> FakeResponse:
        task = self.tasks.get(req.params["id"])  # no auth: result links are shareable
        if task is None or task.state()[0] != "DONE":
            return detail(404, "Not found")
        return bytes_response(task.image, "image/png")

    def _new_task(self, body: dict[str, Any]) -> tuple[Task | None, str | None]:
        if body.get("mode") not in ("text", "image"):
            return None, "mode must be 'text' or 'image'"
        if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            return None, "prompt is required"
        width, height = body.get("width", 512), body.get("height", 512)
        if not all(isinstance(v, int) and 64 <= v <= 1024 for v in (width, height)):
            return None, "width and height must be integers in 64..1024"
        if body["mode"] == "image":
            try:
                image = base64.b64decode(body.get("source") or "", validate=True)
            except binascii.Error:
                image = b""
            if not image.startswith(PNG_SIGNATURE):
                return None, "source must be a base64 PNG"
            width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
        else:
            image = make_png(width, height, f"{body['prompt']}|{body.get('seed')}")
        outcome = "DONE"
        if "nsfw-output" in body["prompt"].lower():
            outcome = "BLOCKED"  # accepted, then the output fails moderation
        elif self.job_fails():
            outcome = "ERROR"
        task = Task(
            uuid.uuid4().hex, body["mode"], width, height, image, outcome, self.latency, time.monotonic()
        )
        return task, None

    def _json(self, task: Task, base_url: str) -> dict[str, Any]:
        state, percent = task.state()
        data: dict[str, Any] = {"uuid": task.uuid, "mode": task.mode, "state": state, "percent": percent}
        if state == "DONE":
            data["result"] = {
                "url": f"{base_url}/cdn/{task.uuid}.png",
                "width": task.width,
                "height": task.height,
            }
        elif state in ("ERROR", "BLOCKED"):
            data["reason"] = "Render failed" if state == "ERROR" else "Output blocked by moderation"
        return data


def create_fake(**knobs: Any) -> EchoFakeApi:
    """The fake contract: knobs in, an unstarted server out."""
    return EchoFakeApi(**knobs)
