"""A faithful local fake of Pixverse's remote API (WebAPI + OpenAPI v2 + its media CDN), stdlib only.

Every answer is Pixverse's envelope `{"ErrCode", "ErrMsg", "Resp"}` with HTTP 200, errors included
(ErrCode != 0); only rate limiting (429 + Retry-After) and injected outages (503) use HTTP statuses.
Jobs follow the clock: status 10 (early queue, placeholder URLs) for the first tenth of `latency`,
then 5 (generating), then 1 (done), 7 (moderated: "nsfw-output" in a prompt) or 8 (failed:
`fail_rate`). Protocol, knobs and test hooks: README.md.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
import re
import time
import uuid
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
from pixsim_provider_sdk.testing.tokens import mint_jwt, read_jwt

from . import fake_jobs as jobs
from .fake_reads import ReadRoutes, envelope
from .fake_rules import Order, Refusal, parse_order

DEFAULT_ACCOUNT = 100000001
DEFAULT_SECRET = "pixverse-fake-signing-key"
FOREVER = 4102444800  # 2100-01-01: the default session never expires, so captures stay valid
_FORBIDDEN = re.compile(r"\bforbidden\b", re.IGNORECASE)
_FILTERED = re.compile(r"\bnsfw-output\b", re.IGNORECASE)
WEB_SUBMITS = {"t2v": "t2v", "i2v": "i2v", "extend": "extend", "frames": "transition", "fusion": "fusion"}
OPENAPI_SUBMITS = {
    "text/generate": "t2v",
    "img/generate": "i2v",
    "extend": "extend",
    "fusion/generate": "fusion",
}


class PixverseFakeApi(SubmitFaults, ReadRoutes, JsonFakeServer):
    """The fake. Knobs: see `__init__`, `SubmitFaults` and README.md. State is public so tests can
    inspect it."""

    def __init__(
        self,
        *,
        quota: int | None = None,
        concurrency: int | None = None,
        secret: str = DEFAULT_SECRET,
        seed: int | None = None,
        **faults: Any,
    ) -> None:
        super().__init__()
        self.init_faults(seed=seed, **{"retry_after": 2, **faults})
        self.quota = quota  # initial credits of every account's web and openapi pools
        self.concurrency = concurrency  # gen_simultaneously: running jobs per account
        self.secret = str(secret)  # signs session tokens and derives API keys
        self.accounts: dict[int, jobs.Account] = {}
        self.jobs: dict[int, jobs.Job] = {}
        self.uploads: dict[int, tuple[str, bytes, str]] = {}  # img_id -> (path, bytes, content type)
        self.injected: list[tuple[int, str]] = []
        self._ids = itertools.count(380_000_000_000_000 + random.Random(seed).randrange(10**9))
        self._files: dict[str, tuple[bytes, str]] = {}  # generated output bytes, by path
        self._paths: dict[str, tuple[int, str]] = {}  # output path -> (job id, role)
        self._account(DEFAULT_ACCOUNT, "creator@pixverse.test", "creator")

    # -- test hooks and captures ---------------------------------------------------------------------
    def mint_token(
        self, account_id: int = DEFAULT_ACCOUNT, email: str | None = None, exp: float = FOREVER
    ) -> str:
        """A session token (`_ai_token`) this fake accepts for the account."""
        email = email or (
            self.accounts[account_id].email if account_id in self.accounts else f"u{account_id}@pixverse.test"
        )
        claims = {"AccountId": account_id, "Mail": email, "Username": email.split("@")[0], "exp": int(exp)}
        return mint_jwt(claims, self.secret)

    def api_key(self, account_id: int = DEFAULT_ACCOUNT) -> str:
        """The OpenAPI key of an account (derived from the secret, so it is stable across restarts)."""
        return (
            "sk-"
            + hmac.new(self.secret.encode(), f"openapi:{account_id}".encode(), hashlib.sha256).hexdigest()[
                :32
            ]
        )

    def valid_raw_data(self) -> dict[str, Any]:
        """A browser capture of the default account: session cookies plus its OpenAPI key."""
        trace = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.secret}/trace"))
        anonymous = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.secret}/anonymous"))
        cookies = {"_ai_token": self.mint_token(), "_pxs7_trace_id": trace, "_pxs7_anonymous_id": anonymous}
        return {"cookies": cookies, "openapi_key": self.api_key()}

    def invalid_raw_data(self) -> dict[str, Any]:
        """A well-formed capture whose session Pixverse no longer accepts (ErrCode 10002)."""
        claims = {
            "AccountId": DEFAULT_ACCOUNT,
            "Mail": "creator@pixverse.test",
            "Username": "creator",
            "exp": FOREVER,
        }
        return {"cookies": {"_ai_token": mint_jwt(claims, self.secret + "-rotated")}}

    def set_status(self, job_id: int | str, code: int, *, sized: bool = False) -> None:
        """Pin a job at a raw status code (`sized`: report its output size, as in the early-CDN state)."""
        self.jobs[int(str(job_id).removeprefix("openapi:"))].forced = (code, sized)

    def inject_error(self, err_code: int, err_msg: str = "injected", count: int = 1) -> None:
        """The next `count` submits answer this ErrCode (HTTP 200)."""
        self.injected.extend([(err_code, err_msg)] * count)

    def balance(self, pool: str = "web", account_id: int = DEFAULT_ACCOUNT) -> int | None:
        account, now = self.accounts[account_id], time.monotonic()
        initial = account.balance[pool]
        if initial is None:
            return None
        spent = sum(
            j.charged(now) for j in self.jobs.values() if j.account_id == account_id and j.api == pool
        )
        return initial - spent

    # -- auth ---------------------------------------------------------------------------------------
    def _account(self, account_id: int, email: str, username: str) -> jobs.Account:
        if account_id not in self.accounts:
            self.accounts[account_id] = jobs.Account(
                account_id, email, username, {"web": self.quota, "openapi": self.quota}
            )
        return self.accounts[account_id]

    def _web_auth(self, req: FakeRequest) -> jobs.Account | FakeResponse:
        token = req.header("token")
        if not token:
            return envelope(err_code=10003, err_msg="User is not login")
        claims = read_jwt(token, self.secret, require_exp=True)
        if claims is None or not isinstance(claims.get("AccountId"), int):
            return envelope(err_code=10002, err_msg="Token is expired")
        return self._account(claims["AccountId"], str(claims.get("Mail")), str(claims.get("Username")))

    def _openapi_auth(self, req: FakeRequest) -> jobs.Account | FakeResponse:
        if not req.header("ai-trace-id"):
            return envelope(err_code=400011, err_msg="Ai-trace-id is required")
        key = req.header("api-key") or ""
        for account in self.accounts.values():
            if key and hmac.compare_digest(key, self.api_key(account.id)):
                return account
        return envelope(err_code=10003, err_msg="invalid API-KEY")

    # -- submits ------------------------------------------------------------------------------------
    @route("POST", r"/creative_platform/video/(?P<op>t2v|i2v|extend|frames|fusion)")
    def web_video(self, req: FakeRequest) -> FakeResponse:
        return self._submit(req, "web", WEB_SUBMITS[req.params["op"]])

    @route("POST", r"/creative_platform/image/i2i")
    def web_image(self, req: FakeRequest) -> FakeResponse:
        return self._submit(req, "web", "i2i")

    @route("POST", r"/openapi/v2/video/(?P<op>text/generate|img/generate|extend|fusion/generate)")
    def openapi_video(self, req: FakeRequest) -> FakeResponse:
        return self._submit(req, "openapi", OPENAPI_SUBMITS[req.params["op"]])

    def _submit(self, req: FakeRequest, api: str, op: str) -> FakeResponse:
        account = self._web_auth(req) if api == "web" else self._openapi_auth(req)
        if isinstance(account, FakeResponse):
            return account
        if self.fails_submit():
            return bytes_response(
                b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
                "text/html",
                status=503,
            )
        if self.rate_limits_submit():
            return json_response(
                {"ErrCode": 429, "ErrMsg": "Too Many Requests", "Resp": {}},
                429,
                headers={"Retry-After": str(self.retry_after)},
            )
        if self.injected:
            return envelope(err_code=self.injected[0][0], err_msg=self.injected.pop(0)[1])
        if not isinstance(req.json, dict):
            return envelope(err_code=400017, err_msg="invalid request body")
        try:
            order = parse_order(op, api, req.json, self)
        except Refusal as refusal:
            return envelope(err_code=refusal.err_code, err_msg=refusal.err_msg)
        if any(_FORBIDDEN.search(p) for p in order.prompts):
            return envelope(
                err_code=500063, err_msg="The input text is not compliant, please modify it and try again"
            )
        now = time.monotonic()
        mine = [j for j in self.jobs.values() if j.account_id == account.id]
        if self.concurrency is not None and sum(j.running(now) for j in mine) >= self.concurrency:
            return envelope(err_code=500044, err_msg="Reached the limit for concurrent generations")
        pool = "openapi" if api == "openapi" else "web"
        left = self.balance(pool, account.id)
        if left is not None and order.cost > left:
            return envelope(err_code=500043 if left <= 0 else 500090, err_msg="Insufficient balance")
        job = self._new_job(order, api, account)
        if job.kind == "image":
            response = envelope({"image_id": job.id, "success_ids": [job.id], "credits": job.cost})
        else:
            response = envelope({"video_id": job.id, "video_ids": [job.id], "credits": job.cost})
        self.after_accept(response)
        return response

    def _new_job(self, order: Order, api: str, account: jobs.Account) -> jobs.Job:
        outcome = "success"
        if any(_FILTERED.search(p) for p in order.prompts):
            outcome = "filter"
        elif self.job_fails():
            outcome = "fail"
        job = jobs.Job(
            id=next(self._ids),
            kind=order.kind,
            create_mode=order.create_mode,
            api=api,
            account_id=account.id,
            token=uuid.uuid4().hex,
            model=order.model,
            quality=order.quality,
            duration=order.duration,
            aspect_ratio=order.aspect_ratio,
            prompt=order.prompts[0],
            seed=order.seed or self._random.randrange(1, 2**31),
            cost=order.cost,
            outcome=outcome,
            latency=self.latency,
            multi_shot=order.multi_shot,
            audio=order.audio,
        )
        self.jobs[job.id] = job
        self._paths.update({path: (job.id, role) for role, path in job.files().items()})
        return job

    # -- media references (fake_rules.Media) --------------------------------------------------------
    def known_path(self, path: str) -> bool:
        return any(p == path for p, _, _ in self.uploads.values()) or self._output(path) is not None

    def _output(self, path: str) -> tuple[jobs.Job, str] | None:
        """(job, role) for a path of a job's output that exists now; None before or without it."""
        found = self._paths.get(path)
        if found is None or not self.jobs[found[0]].has_output(time.monotonic()):
            return None
        return self.jobs[found[0]], found[1]

    def known_upload(self, img_id: Any) -> bool:
        return isinstance(img_id, int) and img_id in self.uploads

    def finished_video(self, video_id: Any = None, path: str | None = None) -> jobs.Job | None:
        now = time.monotonic()
        for job in self.jobs.values():
            if (
                job.kind == "video"
                and job.has_output(now)
                and (str(job.id) == str(video_id) or (path and job.files()["video"] == path))
            ):
                return job
        return None


def create_fake(**knobs: Any) -> PixverseFakeApi:
    """The contract every provider's fake_api.py meets: knobs in, an unstarted server out."""
    return PixverseFakeApi(**knobs)
