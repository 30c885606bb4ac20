"""The Simulator's remote API, faked: a small REST video/image service for tests, demos and system runs.

Protocol (see README.md): bearer-token auth on /v1, `POST /v1/uploads`, `POST /v1/jobs`,
`GET /v1/jobs/{id}`, `POST /v1/jobs/{id}/cancel`, and unauthenticated `GET /v1/files/{name}` (a CDN).
A job's status follows the clock: queued for the first 10% of its latency, then running with rising
progress, then its outcome. Stdlib only, so the fake runs wherever the SDK does.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pixsim_provider_sdk.testing.fake_http import (
    FakeRequest,
    FakeResponse,
    JsonFakeServer,
    bytes_response,
    json_error,
    json_response,
    route,
)
from pixsim_provider_sdk.testing.faults import SubmitFaults
from pixsim_provider_sdk.testing.media import make_png

from .fake_media import make_mp4

QUALITY_SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
VIDEO_OPERATIONS = {"text_to_video", "image_to_video"}
OPERATIONS = VIDEO_OPERATIONS | {"text_to_image"}
FINAL_STATUS = {"success": "succeeded", "fail": "failed", "filter": "moderated"}
TERMINAL = {"succeeded", "failed", "moderated", "cancelled"}
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
THUMB_WIDTH = 160
_FORBIDDEN = re.compile(r"\bforbidden\b", re.IGNORECASE)
#: Accepted at submit, then the job ends `moderated`: output moderation, as opposed to `forbidden`.
_NSFW_OUTPUT = re.compile(r"nsfw-output", re.IGNORECASE)
#: A well-formed token that the remote has revoked: it always answers 401 (see `invalid_raw_data`).
REVOKED_TOKEN = "sim-revoked-5f0c2a9e71d4"
#: The user token `valid_raw_data` captures when the `tokens` knob does not list the accepted ones.
USER_TOKEN = "sim-user-8b31d6f0c2e7"
_JOB_FILE = re.compile(r"(?P<job>job_[0-9a-f]+)(?P<thumb>_thumb)?\.(?P<ext>mp4|png)")


@dataclass
class Job:
    id: str
    operation: str
    prompt: str
    outcome: str  # success | fail | filter
    latency: float
    width: int
    height: int
    duration: int | None  # seconds, video only
    quality: str | None
    image: str | None  # upload id, image_to_video only
    started: float  # time.monotonic() at submit
    created_at: str
    cancelled: tuple[float, int] | None = None  # (when, progress then)
    token: str = ""  # whose job it is
    reference: str | None = None  # the client's Idempotency-Key, if it sent one

    @property
    def is_video(self) -> bool:
        return self.operation in VIDEO_OPERATIONS

    def state(self, now: float) -> tuple[str, int]:
        """(status, progress 0..100) at `now`."""
        if self.cancelled is not None:
            return "cancelled", self.cancelled[1]
        fraction = 1.0 if self.latency <= 0 else (now - self.started) / self.latency
        if fraction >= 1:
            return FINAL_STATUS[self.outcome], 100
        if fraction < 0.1:
            return "queued", 0
        return "running", min(99, max(1, int(fraction * 100)))


class SimFakeApi(SubmitFaults, JsonFakeServer):
    """The fake. Knobs: see `__init__`, `SubmitFaults` and README.md; counters are public so tests can
    inspect them."""

    def __init__(
        self,
        *,
        quota: int | None = None,
        tokens: list[str] | str | None = None,
        drop_submits: int = 0,
        fail_lookups: int = 0,
        latency_max: float | None = None,
        fail_submit_rate: float = 0.0,
        accept_then_stall_rate: float = 0.0,
        accept_then_drop_rate: float = 0.0,
        idempotency: bool = True,
        **faults: Any,
    ) -> None:
        super().__init__()
        self.init_faults(**faults)
        if not all(0 <= r <= 1 for r in (fail_submit_rate, accept_then_stall_rate, accept_then_drop_rate)):
            raise ValueError("knobs: rates in 0..1")
        if latency_max is not None and latency_max < self.latency:
            raise ValueError("knobs: latency_max >= latency")
        #: With `latency_max`, a job that sets no latency of its own takes a random time in latency..latency_max.
        self.latency_max = None if latency_max is None else float(latency_max)
        self.quota = None if quota is None else int(quota)
        self.credits_remaining = self.quota  # None: unlimited
        self.tokens = set(tokens.split(",") if isinstance(tokens, str) else tokens) if tokens else None
        # Faults without a job: the next N submits drop the connection before creating anything (as
        # ambiguous to the client as a drop after acceptance), and the next N job listings answer 503.
        self.drop_submits = int(drop_submits)
        self.fail_lookups = int(fail_lookups)
        # The submit faults at random, as rates (0..1) per submit: a provider that is flaky all the time.
        self.fail_submit_rate = float(fail_submit_rate)
        self.accept_then_stall_rate = float(accept_then_stall_rate)
        self.accept_then_drop_rate = float(accept_then_drop_rate)
        #: False: an Idempotency-Key is recorded as the job's `reference` but does not deduplicate, like a
        #: provider without idempotency (a client that submits twice makes two jobs).
        self.idempotency = bool(idempotency)
        self.faults: dict[str, int] = {"503": 0, "stall": 0, "drop": 0}  # faults served so far, by kind
        self.idempotent: dict[tuple[str, str], str] = {}  # (token, Idempotency-Key) -> job id
        self.jobs: dict[str, Job] = {}
        self.uploads: dict[str, tuple[bytes, str]] = {}  # id -> (bytes, content type)
        self._files: dict[str, tuple[bytes, str]] = {}  # generated outputs, by file name

    # -- auth -------------------------------------------------------------------------------------
    def valid_raw_data(self) -> dict[str, Any]:
        """What the browser extension captures from a signed-in session this fake accepts."""
        token = min(self.tokens) if self.tokens else USER_TOKEN
        return {"email": "user@sim.pixsim.local", "cookies": [_cookie(token)]}

    def invalid_raw_data(self) -> dict[str, Any]:
        """A well-formed capture whose session the fake rejects with its real 401."""
        return {"email": "revoked@sim.pixsim.local", "cookies": [_cookie(REVOKED_TOKEN)]}

    def _denied(self, req: FakeRequest) -> FakeResponse | None:
        token = req.bearer_token
        revoked = token in ("bad", REVOKED_TOKEN)
        if not token or revoked or (self.tokens is not None and token not in self.tokens):
            return json_error(
                401,
                "unauthorized",
                "missing or invalid bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="sim"'},
            )
        return None

    # -- endpoints --------------------------------------------------------------------------------
    @route("POST", r"/v1/uploads")
    def upload(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req):
            return denied
        if not req.body:
            return json_error(400, "invalid_request", "the upload body is empty")
        if len(req.body) > MAX_UPLOAD_BYTES:
            return json_error(413, "payload_too_large", f"uploads are limited to {MAX_UPLOAD_BYTES} bytes")
        upload_id = _new_id("upl")
        content_type = req.header("content-type") or "application/octet-stream"
        self.uploads[upload_id] = (req.body, content_type)
        return json_response(
            {
                "id": upload_id,
                "url": f"{req.base_url}/v1/files/{upload_id}",
                "size": len(req.body),
                "content_type": content_type,
            },
            201,
        )

    @route("POST", r"/v1/jobs")
    def submit(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req):
            return denied
        key = req.header("idempotency-key")
        if (
            key and self.idempotency and (req.bearer_token or "", key) in self.idempotent
        ):  # a retry: the first job, as first answered
            job = self.jobs[self.idempotent[(req.bearer_token or "", key)]]
            return json_response(self._job_json(job, req.base_url), 201, {"Idempotent-Replayed": "true"})
        if self.fails_submit(self.fail_submit_rate):
            self.faults["503"] += 1
            return json_error(503, "unavailable", "the service is temporarily overloaded, try again")
        if self.drop_submits > 0:
            self.drop_submits -= 1
            dropped = json_response({}, 500)
            dropped.drop = True
            return dropped
        if self.rate_limits_submit():
            return json_error(
                429, "rate_limited", "too many requests", headers={"Retry-After": str(self.retry_after)}
            )
        body = req.json
        if not isinstance(body, dict):
            return json_error(400, "invalid_request", "the body must be a JSON object")
        problem = self._invalid(body)
        if problem:
            return json_error(400, "invalid_request", problem)
        if _FORBIDDEN.search(body["prompt"]):
            return json_error(400, "content_policy_violation", "the prompt violates the content policy")
        job = self._new_job(body)
        cost = job.duration if job.is_video else 1
        if self.credits_remaining is not None:
            if cost > self.credits_remaining:
                return json_error(
                    402,
                    "insufficient_credits",
                    f"this job needs {cost} credits, {self.credits_remaining} left",
                    needed=cost,
                    remaining=self.credits_remaining,
                )
            self.credits_remaining -= cost
        job.token, job.reference = req.bearer_token or "", key
        self.jobs[job.id] = job
        if key:
            self.idempotent[(job.token, key)] = job.id
        response = json_response(self._job_json(job, req.base_url), 201)
        fault = self.after_accept(
            response, drop_rate=self.accept_then_drop_rate, stall_rate=self.accept_then_stall_rate
        )
        if fault:
            self.faults[fault] += 1
        return response

    @route("GET", r"/v1/jobs")
    def list_jobs(self, req: FakeRequest) -> FakeResponse:
        """The caller's jobs, newest first; `?reference=` keeps those submitted with that Idempotency-Key."""
        if denied := self._denied(req):
            return denied
        if self.fail_lookups > 0:
            self.fail_lookups -= 1
            return json_error(503, "unavailable", "the job index is temporarily unavailable, try again")
        token, reference = req.bearer_token or "", req.query.get("reference")
        mine = [
            j
            for j in reversed(self.jobs.values())
            if j.token == token and (reference is None or j.reference == reference)
        ]
        limit = min(int(req.query.get("limit") or 50), 100)
        return json_response({"items": [self._job_json(j, req.base_url) for j in mine[:limit]]})

    def jobs_with_reference(self, reference: str) -> list[Job]:
        """Tests: the jobs submitted with this Idempotency-Key (more than one is a double submit)."""
        return [j for j in self.jobs.values() if j.reference == reference]

    @route("GET", r"/v1/jobs/(?P<id>[^/]+)")
    def get_job(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req):
            return denied
        job = self.jobs.get(req.params["id"])
        if job is None:
            return json_error(404, "not_found", f"no job {req.params['id']}")
        return json_response(self._job_json(job, req.base_url))

    @route("POST", r"/v1/jobs/(?P<id>[^/]+)/cancel")
    def cancel(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req):
            return denied
        job = self.jobs.get(req.params["id"])
        if job is None:
            return json_error(404, "not_found", f"no job {req.params['id']}")
        now = time.monotonic()
        status, progress = job.state(now)
        if status in TERMINAL - {"cancelled"}:  # cancelling twice is harmless; cancelling a result is not
            return json_error(409, "conflict", f"job {job.id} already {status}")
        if job.cancelled is None:
            job.cancelled = (now, progress)
        return json_response(self._job_json(job, req.base_url))

    @route("GET", r"/v1/files/(?P<name>[A-Za-z0-9_.-]+)")
    def file(self, req: FakeRequest) -> FakeResponse:
        # No auth: output URLs are meant to be fetched by anyone holding them, like a CDN's.
        found = self.uploads.get(req.params["name"]) or self._output_file(req.params["name"])
        if found is None:
            return json_error(404, "not_found", f"no file {req.params['name']}")
        data, content_type = found
        return bytes_response(data, content_type, headers={"Cache-Control": "public, max-age=3600"})

    # -- helpers ----------------------------------------------------------------------------------
    def _invalid(self, body: dict[str, Any]) -> str | None:
        operation = body.get("operation")
        if operation not in OPERATIONS:
            return f"operation must be one of {sorted(OPERATIONS)}"
        if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            return "prompt is required"
        if body.get("outcome", "success") not in FINAL_STATUS:
            return f"outcome must be one of {sorted(FINAL_STATUS)}"
        latency = body.get("latency")
        if latency is not None and (not _is_number(latency) or not 0 <= latency <= 3600):
            return "latency must be a number of seconds in 0..3600"
        if operation in VIDEO_OPERATIONS:
            duration = body.get("duration", 5)
            if not isinstance(duration, int) or isinstance(duration, bool) or not 1 <= duration <= 60:
                return "duration must be an integer number of seconds in 1..60"
            if body.get("quality", "720p") not in QUALITY_SIZES:
                return f"quality must be one of {list(QUALITY_SIZES)}"
        else:
            for side in ("width", "height"):
                value = body.get(side, 1024)
                if not isinstance(value, int) or isinstance(value, bool) or not 64 <= value <= 2048:
                    return f"{side} must be an integer in 64..2048"
        if operation == "image_to_video" and body.get("image") not in self.uploads:
            return "image must be the id of an upload (POST /v1/uploads first)"
        return None

    def _new_job(self, body: dict[str, Any]) -> Job:
        operation = body["operation"]
        outcome = body.get("outcome") or "success"
        if outcome == "success" and _NSFW_OUTPUT.search(body["prompt"]):
            outcome = "filter"
        if outcome == "success" and self.job_fails():
            outcome = "fail"
        latency = body.get("latency")
        if latency is None and self.latency_max is not None:
            latency = self._random.uniform(self.latency, self.latency_max)
        if operation in VIDEO_OPERATIONS:
            quality = body.get("quality", "720p")
            width, height = QUALITY_SIZES[quality]
            duration = body.get("duration", 5)
        else:
            quality, duration = None, None
            width, height = body.get("width", 1024), body.get("height", 1024)
        return Job(
            id=_new_id("job"),
            operation=operation,
            prompt=body["prompt"],
            outcome=outcome,
            latency=self.latency if latency is None else float(latency),
            width=width,
            height=height,
            duration=duration,
            quality=quality,
            image=body.get("image"),
            started=time.monotonic(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        )

    def _job_json(self, job: Job, base_url: str) -> dict[str, Any]:
        status, progress = job.state(time.monotonic())
        data: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "status": status,
            "progress": progress,
            "created_at": job.created_at,
        }
        if status == "succeeded":
            ext = "mp4" if job.is_video else "png"
            data["output"] = {
                "url": f"{base_url}/v1/files/{job.id}.{ext}",
                "thumbnail_url": f"{base_url}/v1/files/{job.id}_thumb.png",
                "width": job.width,
                "height": job.height,
                "duration": job.duration,
            }
        elif status == "failed":
            data["error"] = {"code": "generation_failed", "message": "the simulated render failed"}
        elif status == "moderated":
            data["error"] = {
                "code": "output_moderated",
                "message": "the output was rejected by the content policy",
            }
        return data

    def _output_file(self, name: str) -> tuple[bytes, str] | None:
        """A succeeded job's output or thumbnail, generated on first request and then cached."""
        match = _JOB_FILE.fullmatch(name)
        job = self.jobs.get(match["job"]) if match else None
        if job is None or job.state(time.monotonic())[0] != "succeeded":
            return None
        if name not in self._files:
            if match["thumb"]:
                if match["ext"] != "png":
                    return None
                height = max(1, THUMB_WIDTH * job.height // job.width)
                self._files[name] = (make_png(THUMB_WIDTH, height, job.id), "image/png")
            elif match["ext"] == ("mp4" if job.is_video else "png"):
                data = (
                    make_mp4(job.duration, job.id)
                    if job.is_video
                    else make_png(job.width, job.height, job.id)
                )
                self._files[name] = (data, "video/mp4" if job.is_video else "image/png")
            else:
                return None
        return self._files[name]


def _cookie(token: str) -> dict[str, str]:
    # The shape browser extensions export (name, value, domain, ...), not a bare name -> value map.
    return {"name": "sim_token", "value": token, "domain": "sim.pixsim.local", "path": "/"}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def create_fake(**knobs: Any) -> SimFakeApi:
    """The contract every provider's fake_api.py meets: knobs in, an unstarted server out."""
    return SimFakeApi(**knobs)
