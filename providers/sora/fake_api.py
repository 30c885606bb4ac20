"""OpenAI's Sora Videos API, faked: `/v1/videos` create (JSON or multipart), retrieve, list, delete and
content, with OpenAI's error bodies, bearer auth (API keys and browser session tokens), quota, rate
limits, moderation at submit (`sentinel_block`) and during generation (`failed` + `moderation_blocked`),
and assets that expire. The protocol and the knobs are in README.md. Standard library only.
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

from pixsim_provider_sdk import image_info
from pixsim_provider_sdk.testing.fake_http import (
    FakeRequest,
    FakeResponse,
    JsonFakeServer,
    bytes_response,
    json_response,
    route,
)
from pixsim_provider_sdk.testing.faults import SubmitFaults
from pixsim_provider_sdk.testing.media import make_mp4, make_png

from .fake_requests import auth_error, form_fields, invalid_request, oai_error
from .fake_video import REVOKED_KEY, Video, price

_FORBIDDEN = re.compile(r"\bforbidden\b", re.IGNORECASE)
_NSFW_OUTPUT = re.compile(r"\bnsfw-output\b", re.IGNORECASE)
_VIDEO_ID = r"(?P<id>[^/]+)"
THUMB_WIDTH = 160


class SoraFakeApi(SubmitFaults, JsonFakeServer):
    """The fake. Knobs: see `__init__`, `SubmitFaults` and README.md; counters are public so tests can
    inspect them."""

    def __init__(
        self,
        *,
        quota: int | None = None,
        max_concurrent: int | None = None,
        asset_ttl: float = 3600.0,
        queue_fraction: float = 0.1,
        api_keys: list[str] | str | None = None,
        public_content: bool = False,
        **faults: Any,
    ) -> None:
        super().__init__()
        self.init_faults(**faults)
        if asset_ttl < 0:
            raise ValueError("knob asset_ttl must be >= 0")
        if not 0 <= queue_fraction <= 1:
            raise ValueError("knob queue_fraction must be in 0..1")
        self.quota = None if quota is None else int(quota)
        self.credits_remaining = self.quota  # cents of usage; None: unlimited
        self.max_concurrent = None if max_concurrent is None else int(max_concurrent)
        self.asset_ttl = float(asset_ttl)
        self.queue_fraction = float(queue_fraction)
        keys = api_keys.split(",") if isinstance(api_keys, str) else api_keys
        self.api_keys = set(keys) if keys else None  # None: any well-formed key but the revoked one
        self.valid_key = min(self.api_keys) if self.api_keys else f"sk-proj-fake{secrets.token_hex(20)}"
        self.public_content = bool(public_content)
        self.videos: dict[str, Video] = {}
        self._assets: dict[tuple[str, str], tuple[bytes, str]] = {}

    # -- the fake contract ----------------------------------------------------------------------
    def valid_raw_data(self) -> dict[str, Any]:
        """An API-key capture this fake accepts."""
        return {"api_key": self.valid_key, "email": "sora-dev@example.com"}

    def invalid_raw_data(self) -> dict[str, Any]:
        """Well-formed, but the key is revoked: every call answers 401 invalid_api_key."""
        return {"api_key": REVOKED_KEY, "email": "revoked@example.com"}

    # -- auth -------------------------------------------------------------------------------------
    def _denied(self, req: FakeRequest, *, content: bool = False) -> FakeResponse | None:
        if content and self.public_content:
            return None
        return auth_error(req.bearer_token, self.api_keys)

    # -- endpoints --------------------------------------------------------------------------------
    @route("POST", r"/v1/videos")
    def create(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req):
            return denied
        if self.fails_submit():
            return oai_error(
                500,
                "The server had an error while processing your request. Sorry about that!",
                type_="server_error",
            )
        if self.rate_limits_submit():
            return oai_error(
                429,
                f"Rate limit reached for videos in organization org-fake on requests per min (RPM): Limit 2, "
                f"Used 2, Requested 1. Please try again in {self.retry_after}s.",
                type_="requests",
                code="rate_limit_exceeded",
                headers={
                    "retry-after": str(self.retry_after),
                    "x-ratelimit-limit-requests": "2",
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": f"{self.retry_after}s",
                },
            )
        parsed = form_fields(req)
        if isinstance(parsed, FakeResponse):
            return parsed
        fields, image = parsed
        if problem := invalid_request(fields, image):
            return problem
        if _FORBIDDEN.search(fields["prompt"]):
            return oai_error(
                400,
                "Hmmm something didn't look right with your request. Please try again later or visit "
                "https://help.openai.com if this issue persists.",
                code="sentinel_block",
            )
        response = self._start(
            fields, image_info(image) if image is not None else None, req.bearer_token or ""
        )
        if response.status == 200:
            self.after_accept(response)
        return response

    def _start(
        self, fields: dict[str, Any], reference: tuple[str, int, int] | None, owner: str = ""
    ) -> FakeResponse:
        self._settle()
        active = sum(1 for v in self.videos.values() if v.state()[0] in ("queued", "in_progress"))
        if self.max_concurrent is not None and active >= self.max_concurrent:
            return oai_error(
                429,
                f"You already have {active} videos rendering; wait for one to finish.",
                code="too_many_concurrent_tasks",
            )
        cost = price(fields["model"], fields["size"], int(fields["seconds"]))
        if self.credits_remaining is not None:
            if cost > self.credits_remaining:
                return oai_error(
                    429,
                    "You exceeded your current quota, please check your plan and billing details. For more "
                    "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
                    type_="insufficient_quota",
                    code="insufficient_quota",
                )
            self.credits_remaining -= cost
        outcome = "completed"
        if _NSFW_OUTPUT.search(fields["prompt"]):
            outcome = "moderated"
        elif self.job_fails():
            outcome = "failed"
        video = Video(
            id=f"video_{uuid.uuid4().hex}{uuid.uuid4().hex[:16]}",
            model=fields["model"],
            prompt=fields["prompt"],
            seconds=int(fields["seconds"]),
            size=fields["size"],
            outcome=outcome,
            latency=self.latency,
            queue_fraction=self.queue_fraction,
            cost=cost,
            reference=reference,
            owner=owner,
        )
        self.videos[video.id] = video
        return json_response(video.to_json(self.asset_ttl))

    @route("GET", r"/v1/videos")
    def list_videos(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req):
            return denied
        # Like the real API, a key sees its own project's videos only.
        videos = sorted(
            (v for v in self.videos.values() if v.owner == (req.bearer_token or "")),
            key=lambda v: v.started,
            reverse=req.query.get("order") != "asc",
        )
        if after := req.query.get("after"):
            ids = [v.id for v in videos]
            videos = videos[ids.index(after) + 1 :] if after in ids else []
        try:
            limit = max(1, min(100, int(req.query.get("limit", "20"))))
        except ValueError:
            return oai_error(400, "Invalid value for 'limit'.", param="limit", code="invalid_value")
        page = [v.to_json(self.asset_ttl) for v in videos[:limit]]
        return json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(videos) > limit,
            }
        )

    @route("GET", rf"/v1/videos/{_VIDEO_ID}")
    def retrieve(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req):
            return denied
        video = self.videos.get(req.params["id"])
        if video is None:
            return self._not_found(req.params["id"])
        self._settle()
        return json_response(video.to_json(self.asset_ttl))

    @route("DELETE", rf"/v1/videos/{_VIDEO_ID}")
    def delete(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req):
            return denied
        video = self.videos.get(req.params["id"])
        if video is None:
            return self._not_found(req.params["id"])
        status = video.state()[0]
        if status not in ("completed", "failed"):
            return oai_error(
                400,
                f"Video {video.id} is {status}; only completed or failed videos can be deleted.",
                code="invalid_video_state",
            )
        self._settle()
        del self.videos[video.id]
        for variant in ("video", "thumbnail", "spritesheet"):
            self._assets.pop((video.id, variant), None)
        return json_response({"id": video.id, "object": "video.deleted", "deleted": True})

    @route("GET", rf"/v1/videos/{_VIDEO_ID}/content")
    def content(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req, content=True):
            return denied
        video = self.videos.get(req.params["id"])
        if video is None:
            return self._not_found(req.params["id"])
        variant = req.query.get("variant", "video")
        if variant not in ("video", "thumbnail", "spritesheet"):
            return oai_error(
                400,
                f"Invalid value: {variant!r}. Supported values are: 'video', 'thumbnail', and 'spritesheet'.",
                param="variant",
                code="invalid_value",
            )
        status = video.state()[0]
        if status != "completed":
            return oai_error(
                400,
                f"Video {video.id} is {status}; content is available once it has completed.",
                code="video_not_ready",
            )
        if video.expired(self.asset_ttl):
            return oai_error(404, f"The content of video {video.id} has expired.", code="video_expired")
        data, content_type = self._asset(video, variant)
        extension = "mp4" if variant == "video" else "png"
        return bytes_response(
            data,
            content_type,
            headers={"Content-Disposition": f'attachment; filename="{video.id}.{extension}"'},
        )

    # -- helpers ----------------------------------------------------------------------------------
    def _not_found(self, video_id: str) -> FakeResponse:
        return oai_error(
            404, f"Video with id '{video_id}' not found.", param="video_id", code="video_not_found"
        )

    def _settle(self) -> None:
        """Give back the credits reserved by jobs that ended failed (OpenAI bills completed videos only)."""
        for video in self.videos.values():
            if not video.settled and video.state()[0] == "failed":
                video.settled = True
                if self.credits_remaining is not None:
                    self.credits_remaining += video.cost

    def _asset(self, video: Video, variant: str) -> tuple[bytes, str]:
        """A completed video's asset, generated on first request and then cached."""
        key = (video.id, variant)
        if key not in self._assets:
            width, height = (int(x) for x in video.size.split("x"))
            if variant == "video":
                self._assets[key] = (make_mp4(video.seconds, video.id, bytes_per_second=2048), "video/mp4")
            elif variant == "thumbnail":
                self._assets[key] = (
                    make_png(THUMB_WIDTH, max(1, THUMB_WIDTH * height // width), video.id),
                    "image/png",
                )
            else:  # spritesheet: a strip of frames, here 4 thumbnails wide
                self._assets[key] = (
                    make_png(THUMB_WIDTH * 4, max(1, THUMB_WIDTH * height // width), video.id),
                    "image/png",
                )
        return self._assets[key]


def create_fake(**knobs: Any) -> SoraFakeApi:
    """The contract every provider's fake_api.py meets: knobs in, an unstarted server out."""
    return SoraFakeApi(**knobs)
