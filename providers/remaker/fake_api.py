"""Remaker's web internal API, faked: the photo-editor and prompt-editor job endpoints, user info,
image upload and a signed-URL CDN, for tests and `make run` (protocol and knobs in README.md).

A job's state follows the clock (`now()`, which tests may move with `advance_clock`): queued for the
first 10% of its latency, processing with rising progress until 90%, then "done but still saving"
(code 100000 without output) until 100%, then its outcome. Standard library only.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pixsim_provider_sdk import sniff_image
from pixsim_provider_sdk.media_types import EXTENSIONS
from pixsim_provider_sdk.testing.fake_http import (
    FakeRequest,
    FakeResponse,
    JsonFakeServer,
    bytes_response,
    json_response,
    route,
)
from pixsim_provider_sdk.testing.faults import SubmitFaults
from pixsim_provider_sdk.testing.media import make_png
from pixsim_provider_sdk.testing.multipart import FormFile, parse_multipart
from pixsim_provider_sdk.testing.tokens import mint_jwt, read_jwt

from . import fake_support as fs

PHOTO, PROMPT = "ai-photo-editor", "prompt-editor"
PROMPT_MODELS = ["sd", "sd5", "flux", "qwen", "nano", "nano2", "nano_pro"]
PHOTO_MODELS = ["sd", "flux"]
RESOLUTIONS = {
    "sd": ["1K", "2K", "4K"],
    "sd5": ["1K", "2K", "3K", "4K"],
    "flux": ["1K"],
    "qwen": ["1K"],
    "nano": ["1K"],
    "nano2": ["1K", "2K", "4K"],
    "nano_pro": ["1K", "2K", "4K"],
}
MAX_IMAGES = {"sd": 4, "sd5": 4, "flux": 1, "qwen": 1, "nano": 3, "nano2": 3, "nano_pro": 6}
ASPECT_RATIOS = ["match_input_image", "1:1", "2:3", "3:4", "9:16", "3:2", "4:3", "16:9", "21:9"]
PROMPT_PRICE = {"sd": 6, "sd5": 8, "flux": 2, "qwen": 3, "nano": 4, "nano2": 6, "nano_pro": 10}
PHOTO_PRICE = {"sd": 4, "flux": 2}
RESOLUTION_FACTOR = {"1K": 1.0, "2K": 1.0, "3K": 1.5, "4K": 2.0}
PROCESSING_CODE = {PHOTO: 300006, PROMPT: 300013}
MAX_FILE_BYTES = 10 * 1024 * 1024
UNLIMITED_CREDITS = 999_999  # what get-userinfo shows when the quota knob is None
MESSAGES = {
    100000: ("Success", "成功"),
    100002: ("The task is queued, please wait", "任务排队中，请稍候"),
    100004: ("Login has expired, please log in again", "登录已过期，请重新登录"),
    100009: ("Too many requests, please try again later", "请求过于频繁，请稍后再试"),
    200005: ("Insufficient credits, please recharge", "积分不足，请充值"),
    200006: ("You have a task in progress, please wait for it to finish", "您有任务正在进行中，请等待完成"),
    300002: ("Task does not exist", "任务不存在"),
    300006: ("The task is being processed", "任务处理中"),
    300007: ("Generation failed, your credits have been returned", "生成失败，积分已退回"),
    300013: ("The task is being processed", "任务处理中"),
    400000: (
        "The content may violate our community guidelines. Try another prompt or image, or use Flux",
        "内容可能违反社区规范，请更换提示词或图片",
    ),
}
NGINX_503 = (
    b"<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>"
    b"503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>"
)
_FORBIDDEN = re.compile(r"\bforbidden\b", re.IGNORECASE)


def envelope(
    code: int,
    result: dict | None = None,
    status: int = 200,
    message: str | None = None,
    headers: dict[str, str] | None = None,
) -> FakeResponse:
    en, zh = MESSAGES.get(code, (message or "Parameter error", "参数错误"))
    return json_response(
        {"code": code, "message": {"en": message or en, "zh": zh}, "result": result or {}}, status, headers
    )


@dataclass
class Job:
    id: str
    mode: str
    user: str
    task_type: str
    outcome: str  # success | fail | filter
    latency: float
    started: float
    cost: int
    size: tuple[int, int]

    def state(self, now: float) -> tuple[str, int]:
        fraction = 1.0 if self.latency <= 0 else (now - self.started) / self.latency
        if fraction >= 1:
            return {"success": "succeeded", "fail": "failed", "filter": "filtered"}[self.outcome], 100
        if fraction < 0.1:
            return "queued", 0
        return ("processing" if fraction < 0.9 else "saving"), min(99, max(1, int(fraction * 100)))


class RemakerFakeApi(SubmitFaults, JsonFakeServer):
    """The fake; knobs in `__init__`, `SubmitFaults` and README.md. State is public so tests can inspect it."""

    def __init__(
        self,
        *,
        quota: int | None = None,
        url_ttl: float = 3600,
        max_concurrent: int | None = None,
        max_output_side: int = 256,
        secret: str = "remaker-fake-secret",
        verify_signature: bool = True,
        **faults: Any,
    ):
        super().__init__()
        self.init_faults(**faults)
        self.quota = quota
        self.url_ttl, self.max_concurrent, self.max_output_side = (
            float(url_ttl),
            max_concurrent,
            max_output_side,
        )
        self.secret, self.verify_signature = secret, verify_signature
        self.clock_offset = 0.0
        self.jobs: dict[str, Job] = {}
        self.submissions: list[dict[str, Any]] = []  # parsed create-job forms: {"mode", "fields", "files"}
        self.objects: dict[str, tuple[bytes, str]] = {}  # CDN key -> (bytes, content type): uploads, outputs

    # -- the clock, accounts and credits ------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the fake's time forward: jobs progress and signed URLs expire without waiting."""
        self.clock_offset += seconds

    def mint_token(
        self,
        user_id: int = 1001,
        email: str = "user@example.com",
        ttl: float = 30 * 86400,
        secret: str | None = None,
    ) -> str:
        now = int(self.now())
        claims = {
            "id": user_id,
            "gmail": email,
            "product_code": "067003",
            "login_method": "google",
            "iat": now,
            "exp": now + int(ttl),
        }
        return mint_jwt(claims, secret or self.secret)

    def valid_raw_data(self) -> dict[str, Any]:
        """A browser-extension capture the fake accepts (the e-mail is in the JWT)."""
        return {
            "token": self.mint_token(),
            "product_serial": "7858ccf6b18ce68bf56a8163c17ee64a",
            "product_code": "067003",
            "url": "https://remaker.ai/en/ai-photo-editor",
        }

    def invalid_raw_data(self) -> dict[str, Any]:
        """Well-formed, but the token is signed with another key: the fake answers 401 code 100004."""
        return {**self.valid_raw_data(), "token": self.mint_token(secret="not-" + self.secret)}

    def credits_left(self) -> int | None:
        """Credits are taken at create-job and given back when a job fails or is filtered."""
        if self.quota is None:
            return None
        now = self.now()
        spent = sum(j.cost for j in self.jobs.values() if j.state(now)[0] not in ("failed", "filtered"))
        return self.quota - spent

    def _user(self, req: FakeRequest) -> str | None:
        token = req.header("authorization") or ""
        claims = read_jwt(token, self.secret if self.verify_signature else None, now=self.now())
        return str(claims.get("id", "anonymous")) if claims else None

    def _signed(self, req: FakeRequest, key: str) -> str:
        expires = int(self.now() + self.url_ttl)
        return f"{req.base_url}/cdn/{key}?Expires={expires}&Signature={fs.url_signature(key, expires, self.secret)}"

    # -- endpoints ----------------------------------------------------------------------------------
    @route("POST", r"/api/pai/v4/(?P<mode>ai-photo-editor|prompt-editor)/create-job")
    def create_job(self, req: FakeRequest) -> FakeResponse:
        mode = req.params["mode"]
        user = self._user(req)
        if user is None:
            return envelope(100004, status=401)
        if self.fails_submit():
            return bytes_response(NGINX_503, "text/html", status=503)
        if self.rate_limits_submit():
            return envelope(100009, status=429, headers={"Retry-After": str(self.retry_after)})
        form = parse_multipart(req.body, req.header("content-type") or "")
        if form is None:
            return envelope(200001, message="The request must be multipart/form-data")
        fields, files = form
        self.submissions.append({"mode": mode, "fields": fields, "files": files})
        checked = self._check_form(mode, fields, files, req)
        if isinstance(checked, FakeResponse):
            return checked
        if _FORBIDDEN.search(fields["prompt"]):
            return envelope(400000)
        now = self.now()
        running = [
            j
            for j in self.jobs.values()
            if j.user == user and j.state(now)[0] in ("queued", "processing", "saving")
        ]
        if self.max_concurrent is not None and len(running) >= self.max_concurrent:
            return envelope(200006)
        cost, size = checked
        left = self.credits_left()
        if left is not None and cost > left:
            return envelope(200005, {"credits": left, "credits_needed": cost})
        outcome = "filter" if "nsfw-output" in fields["prompt"].lower() else "success"
        if outcome == "success" and self.job_fails():
            outcome = "fail"
        job = Job(str(uuid.uuid4()), mode, user, fields["task_type"], outcome, self.latency, now, cost, size)
        self.jobs[job.id] = job
        response = envelope(100000, {"job_id": job.id})
        self.after_accept(response)
        return response

    def _check_form(
        self, mode: str, fields: dict[str, str], files: dict[str, list[FormFile]], req: FakeRequest
    ) -> FakeResponse | tuple[int, tuple[int, int]]:
        """(price, output size) of a valid form, or the error envelope."""
        if not req.header("product-code"):
            return envelope(200001, message="Missing product-code")
        prompt, task = fields.get("prompt", ""), fields.get("task_type", "")
        if not prompt.strip() or len(prompt) > 5000:
            return envelope(200001, message="The prompt must be 1 to 5000 characters")
        images = files.get("image" if mode == PHOTO else "image_files", [])
        for image in [*images, *files.get("mask", [])]:
            if sniff_image(image.data) is None or len(image.data) > MAX_FILE_BYTES:
                return envelope(200002, message="Please upload a PNG, JPG or WEBP image under 10 MB")
        if mode == PHOTO:
            masks = files.get("mask", [])
            if task not in PHOTO_MODELS:
                return envelope(200001, message=f"task_type must be one of {PHOTO_MODELS}")
            if len(images) != 1 or len(masks) != 1:
                return envelope(200001, message="One image and one mask are required")
            if sniff_image(masks[0].data) != "image/png":
                return envelope(200002, message="The mask must be a PNG image")
            return PHOTO_PRICE[task], fs.scaled(
                fs.image_size(images[0].data) or (1024, 1024), self.max_output_side
            )
        if task not in PROMPT_MODELS:
            return envelope(200001, message=f"task_type must be one of {PROMPT_MODELS}")
        if not 1 <= len(images) <= MAX_IMAGES[task]:
            return envelope(200001, message=f"{task} takes 1 to {MAX_IMAGES[task]} images")
        ratio, resolution = (
            fields.get("aspect_ratio", "match_input_image"),
            fields.get("image_resolution", ""),
        )
        if ratio not in ASPECT_RATIOS:
            return envelope(200001, message=f"aspect_ratio must be one of {ASPECT_RATIOS}")
        if resolution not in RESOLUTIONS[task]:
            return envelope(200001, message=f"{task} supports image_resolution {RESOLUTIONS[task]}")
        size = fs.output_size(resolution, ratio, fs.image_size(images[0].data))
        price = PROMPT_PRICE[task] * RESOLUTION_FACTOR[resolution]
        return math.ceil(price), fs.scaled(size, self.max_output_side)

    @route("GET", r"/api/pai/v4/(?P<mode>ai-photo-editor|prompt-editor)/get-job/(?P<id>[^/]+)")
    def get_job(self, req: FakeRequest) -> FakeResponse:
        user = self._user(req)
        if user is None:
            return envelope(100004, status=401)
        mode, job = req.params["mode"], self.jobs.get(req.params["id"])
        if job is None or job.mode != mode or job.user != user:
            return envelope(300002)
        state, progress = job.state(self.now())
        base = {"job_id": job.id}
        if state == "queued":
            return envelope(100002, {**base, "progress": 0})
        if state == "processing":
            return envelope(PROCESSING_CODE[mode], {**base, "progress": progress})
        if state == "saving":
            return envelope(100000, {**base, "output": [], "progress": progress})
        if state == "failed":
            return envelope(300007, base)
        if state == "filtered":
            return envelope(400000, base)
        # A fresh signature on every poll, like the real CDN links: an expired link is renewed by polling.
        return envelope(100000, {**base, "output": [self._signed(req, f"{mode}/{job.id}/output_0.png")]})

    @route("POST", r"/api/pai-login/v1/user/get-userinfo")
    def user_info(self, req: FakeRequest) -> FakeResponse:
        user = self._user(req)
        if user is None:
            return envelope(100004, status=401)
        claims = read_jwt(req.header("authorization") or "", None, now=self.now()) or {}
        left = self.credits_left()
        return envelope(
            100000,
            {
                "id": claims.get("id"),
                "gmail": claims.get("gmail"),
                "credits": UNLIMITED_CREDITS if left is None else left,
            },
        )

    @route("POST", r"/api/pai/v4/common/upload-image")
    def upload_image(self, req: FakeRequest) -> FakeResponse:
        if self._user(req) is None:
            return envelope(100004, status=401)
        form = parse_multipart(req.body, req.header("content-type") or "")
        files = (form[1] if form else {}).get("file", [])
        if len(files) != 1 or sniff_image(files[0].data) is None or len(files[0].data) > MAX_FILE_BYTES:
            return envelope(200002, message="Please upload a PNG, JPG or WEBP image under 10 MB")
        content_type = sniff_image(files[0].data)
        file_id = uuid.uuid4().hex
        key = f"uploads/{file_id}{EXTENSIONS[content_type]}"
        self.objects[key] = (files[0].data, content_type)
        return envelope(100000, {"file_id": file_id, "url": self._signed(req, key)})

    @route("GET", r"/cdn/(?P<key>[A-Za-z0-9/_.-]+)")
    def cdn(self, req: FakeRequest) -> FakeResponse:
        """Object storage behind signed URLs: no session needed, but the signature must hold."""
        key = req.params["key"]
        try:
            expires = int(req.query.get("Expires", ""))
        except ValueError:
            return _oss_error("AccessDenied", "Missing or malformed Expires")
        if req.query.get("Signature") != fs.url_signature(key, expires, self.secret):
            return _oss_error("SignatureDoesNotMatch", "The request signature we calculated does not match")
        if expires < self.now():
            return _oss_error("AccessDenied", "Request has expired.")
        found = self.objects.get(key) or self._output(key)
        if found is None:
            return _oss_error("NoSuchKey", "The specified key does not exist.", 404)
        return bytes_response(found[0], found[1], headers={"Cache-Control": "private, max-age=3600"})

    def _output(self, key: str) -> tuple[bytes, str] | None:
        parts = key.split("/")
        job = self.jobs.get(parts[1]) if len(parts) == 3 and parts[2] == "output_0.png" else None
        if job is None or job.state(self.now())[0] != "succeeded":
            return None
        if key not in self.objects:  # generated once, then served like any stored object
            self.objects[key] = (make_png(*job.size, job.id), "image/png")
        return self.objects[key]


def _oss_error(code: str, message: str, status: int = 403) -> FakeResponse:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        f"</Error>"
    ).encode()
    return bytes_response(body, "application/xml", status=status)


def create_fake(**knobs: Any) -> RemakerFakeApi:
    """The contract every provider's fake_api.py meets: knobs in, an unstarted server out."""
    return RemakerFakeApi(**knobs)
