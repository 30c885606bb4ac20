"""The fake Pixverse API's read side: personal lists, the one-shot message feed, OpenAPI results,
uploads, credits, user info and the media CDN. A mixin of `fake_api.PixverseFakeApi`, whose state
(jobs, accounts, uploads, auth helpers) it uses."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pixsim_provider_sdk import sniff_image
from pixsim_provider_sdk.testing.fake_http import (
    FakeRequest,
    FakeResponse,
    bytes_response,
    json_response,
    route,
)
from pixsim_provider_sdk.testing.media import make_mp4, make_png
from pixsim_provider_sdk.testing.multipart import parse_multipart

MAX_UPLOAD = 20 * 1024 * 1024
MAX_PAGE = 200
FRAME_WIDTH = 320  # first/last frames are small PNGs; the video's real size is in its record
UNLIMITED = 99_999  # what the credit endpoints show when the fake has no quota


def envelope(resp: Any = None, err_code: int = 0, err_msg: str = "Success") -> FakeResponse:
    """Pixverse's answer shape, always HTTP 200."""
    return json_response({"ErrCode": err_code, "ErrMsg": err_msg, "Resp": resp if resp is not None else {}})


class ReadRoutes:
    # -- WebAPI ---------------------------------------------------------------------------------
    @route("POST", r"/creative_platform/(?P<kind>video|image)/list/personal")
    def personal_list(self, req: FakeRequest) -> FakeResponse:
        account = self._web_auth(req)
        if isinstance(account, FakeResponse):
            return account
        body = req.json if isinstance(req.json, dict) else {}
        offset, limit = body.get("offset", 0), body.get("limit", 50)
        if (
            not isinstance(offset, int)
            or not isinstance(limit, int)
            or offset < 0
            or not 0 < limit <= MAX_PAGE
        ):
            return envelope(err_code=400017, err_msg=f"offset >= 0 and 0 < limit <= {MAX_PAGE}")
        now = time.monotonic()
        mine = sorted(
            (j for j in self.jobs.values() if j.account_id == account.id and j.kind == req.params["kind"]),
            key=lambda j: j.started,
            reverse=True,
        )
        page = [j.web_record(req.base_url, now) for j in mine[offset : offset + limit]]
        return envelope({"data": page, "total": len(mine), "next_offset": offset + len(page)})

    @route("POST", r"/creative_platform/account/message")
    def message(self, req: FakeRequest) -> FakeResponse:
        """Ids of media finished since the last call: a one-shot feed (a browser tab may consume it)."""
        account = self._web_auth(req)
        if isinstance(account, FakeResponse):
            return account
        now = time.monotonic()
        fresh = [
            j
            for j in self.jobs.values()
            if j.account_id == account.id and j.has_output(now) and j.id not in account.notified
        ]
        account.notified.update(j.id for j in fresh)
        return envelope(
            {
                "video_list": [j.id for j in fresh if j.kind == "video"],
                "image_list": [j.id for j in fresh if j.kind == "image"],
            }
        )

    @route("GET", r"/creative_platform/user/credits")
    def web_credits(self, req: FakeRequest) -> FakeResponse:
        account = self._web_auth(req)
        if isinstance(account, FakeResponse):
            return account
        left = self.balance("web", account.id)
        return envelope(
            {"credit_daily": 0, "credit_monthly": 0, "credit_package": UNLIMITED if left is None else left}
        )

    @route("GET", r"/creative_platform/getUserInfo")
    def user_info(self, req: FakeRequest) -> FakeResponse:
        account = self._web_auth(req)
        if isinstance(account, FakeResponse):
            return account
        return envelope(
            {
                "Mail": account.email,
                "Username": account.username,
                "Nickname": account.username,
                "AccId": account.id,
            }
        )

    # -- OpenAPI --------------------------------------------------------------------------------
    @route("GET", r"/openapi/v2/(?P<kind>video|image)/result(?:/(?P<id>[^/]+))?")
    def openapi_result(self, req: FakeRequest) -> FakeResponse:
        account = self._openapi_auth(req)
        if isinstance(account, FakeResponse):
            return account
        media_id = (
            req.params.get("id") or req.query.get(f"{req.params['kind']}_id") or req.query.get("id") or ""
        )
        job = self.jobs.get(int(media_id)) if media_id.isdigit() else None
        # Jobs made through the WebAPI are not visible here, as on the real service.
        if (
            job is None
            or job.account_id != account.id
            or job.api != "openapi"
            or job.kind != req.params["kind"]
        ):
            return envelope(err_code=500047, err_msg="provided media is invalid")
        return envelope(job.openapi_record(req.base_url, time.monotonic()))

    @route("POST", r"/openapi/v2/image/upload")
    def upload(self, req: FakeRequest) -> FakeResponse:
        account = self._openapi_auth(req)
        if isinstance(account, FakeResponse):
            return account
        form = parse_multipart(req.body, req.header("content-type") or "")
        image = form.file("image") if form else None
        if image is None or not image.data:
            return envelope(err_code=400011, err_msg="image is empty")
        data = image.data
        if len(data) > MAX_UPLOAD:
            return envelope(err_code=500030, err_msg="image size exceeds 20MB")
        content_type = sniff_image(data)
        if content_type is None:
            return envelope(err_code=500032, err_msg="invalid image format")
        img_id = next(self._ids)
        path = f"upload/{uuid.uuid4()}.{content_type.split('/')[1].replace('jpeg', 'jpg')}"
        self.uploads[img_id] = (path, data, content_type)
        return envelope({"img_id": img_id, "img_url": f"{req.base_url}/{path}"})

    @route("GET", r"/openapi/v2/account/credits")
    def openapi_credits(self, req: FakeRequest) -> FakeResponse:
        account = self._openapi_auth(req)
        if isinstance(account, FakeResponse):
            return account
        left = self.balance("openapi", account.id)
        return envelope({"credit_monthly": 0, "credit_package": UNLIMITED if left is None else left})

    # -- the media CDN (no auth, like media.pixverse.ai) ----------------------------------------
    @route("GET", r"/(?P<path>(?:pixverse|openapi/output|upload)/[A-Za-z0-9_./-]+)")
    def media(self, req: FakeRequest) -> FakeResponse:
        path = req.params["path"]
        for upload_path, data, content_type in self.uploads.values():
            if upload_path == path:
                return bytes_response(data, content_type, headers={"Cache-Control": "max-age=31536000"})
        found = self._output(path)
        if found is None:  # not rendered yet, failed, or taken down by moderation
            return bytes_response(b"<Error><Code>NoSuchKey</Code></Error>", "application/xml", status=404)
        if path not in self._files:
            job, role = found
            width, height = job.size
            if role == "video":
                self._files[path] = (make_mp4(max(1, job.duration), job.token), "video/mp4")
            elif role == "image":
                self._files[path] = (make_png(width, height, job.token), "image/png")
            else:
                frame_height = max(1, FRAME_WIDTH * height // width)
                self._files[path] = (make_png(FRAME_WIDTH, frame_height, job.token + role), "image/png")
        data, content_type = self._files[path]
        return bytes_response(data, content_type, headers={"Cache-Control": "max-age=31536000"})
