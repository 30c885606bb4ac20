"""The SDK's shared helpers for adapters and fakes, on their own (the providers use them over real HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from pixsim_provider_sdk import (
    AuthenticationError,
    InvalidParametersError,
    JobNotFoundError,
    ProviderUnavailableError,
    RateLimitError,
    error_for_status,
    image_info,
    parse_retry_after,
    scrub,
    sniff,
    sniff_image,
)
from pixsim_provider_sdk.testing.media import make_png
from pixsim_provider_sdk.testing.multipart import parse_multipart
from pixsim_provider_sdk.testing.tokens import mint_jwt, read_jwt
from pixsim_provider_sdk.tokens import NotAJwt, cookie_map, jwt_claims


def test_image_info_reads_png_jpeg_and_webp_sizes():
    assert image_info(make_png(33, 17, "k")) == ("image/png", 33, 17)
    sof = (
        b"\xff\xc0" + (17).to_bytes(2, "big") + b"\x08" + (720).to_bytes(2, "big") + (1280).to_bytes(2, "big")
    )
    jpeg = b"\xff\xd8" + b"\xff\xe0\x00\x04ab" + sof + b"\x03" + b"\x00" * 9
    assert image_info(jpeg) == ("image/jpeg", 1280, 720)
    vp8x = (
        b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00"
        + (1023).to_bytes(3, "little")
        + (1791).to_bytes(3, "little")
    )
    assert image_info(vp8x) == ("image/webp", 1024, 1792)
    assert image_info(b"GIF89a....") is None
    assert [sniff_image(b) for b in (make_png(2, 2), jpeg[:3] + b"\xe0", vp8x, b"GIF89a")] == [
        "image/png",
        "image/jpeg",
        "image/webp",
        None,
    ]


def test_retry_after_reads_seconds_and_http_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("-2") == 0.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= parse_retry_after(later) <= 30
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after(None, 60.0) == 60.0 and parse_retry_after("soon", 60.0) == 60.0


@pytest.mark.parametrize(
    ("status", "job", "error"),
    [
        (401, False, AuthenticationError),
        (403, False, AuthenticationError),
        (429, False, RateLimitError),
        (404, True, JobNotFoundError),
        (404, False, InvalidParametersError),
        (408, False, ProviderUnavailableError),
        (502, False, ProviderUnavailableError),
        (422, False, InvalidParametersError),
    ],
)
def test_error_for_status(status, job, error):
    assert type(error_for_status(status, "x", job=job)) is error


def test_scrub_replaces_every_secret():
    assert scrub("token abc123 and key k-9", ["abc123", None, "", "k-9"]) == "token *** and key ***"


def test_jwt_claims_and_fake_tokens():
    token = mint_jwt({"id": 7, "exp": 2_000_000_000}, "s3cret")
    assert jwt_claims(token) == {"id": 7, "exp": 2_000_000_000}
    assert read_jwt(token, "s3cret") == {"id": 7, "exp": 2_000_000_000}
    assert read_jwt(token, "other") is None and read_jwt(token, None) is not None
    assert read_jwt(token, "s3cret", now=2_000_000_001) is None
    unexpiring = mint_jwt({"id": 7}, "s3cret")
    assert read_jwt(unexpiring, "s3cret") == {"id": 7}
    assert read_jwt(unexpiring, "s3cret", require_exp=True) is None
    for bad, reason in (
        ("opaque", "not a JWT"),
        ("a.!!!.c", "cannot be decoded"),
        ("a.WzFd.c", "not a JSON"),
    ):
        with pytest.raises(NotAJwt, match=reason):
            jwt_claims(bad)


def test_parse_multipart_reads_fields_and_files():
    request = httpx.Request(
        "POST",
        "http://x/",
        data={"prompt": "hi"},
        files=[("image", ("a.png", b"one", "image/png")), ("image", ("b.png", b"two", "image/png"))],
    )
    body = request.read()
    form = parse_multipart(body, request.headers["content-type"])
    assert form is not None and form.fields == {"prompt": "hi"}
    assert [f.data for f in form.files["image"]] == [b"one", b"two"] and form.file(
        "image"
    ).filename == "b.png"
    assert form.file("mask") is None
    assert parse_multipart(b"{}", "application/json") is None


def test_cookie_map_reads_both_capture_shapes():
    exported = [{"name": "sid", "value": "abc", "domain": "x.example"}, {"value": "no name"}, "junk"]
    assert cookie_map(exported) == {"sid": "abc"}
    assert cookie_map({"sid": "abc"}) == {"sid": "abc"}
    assert cookie_map(None) == {} and cookie_map("sid=abc") == {}


def test_sniff_names_what_pixsim_serves():
    assert sniff(make_png(2, 2)) == "image/png" and sniff(b"GIF89a" + bytes(10)) == "image/gif"
    assert sniff(bytes(4) + b"ftypisom") == "video/mp4" and sniff(bytes(4) + b"ftypqt  ") == "video/quicktime"
    assert sniff(b"ID3\x04") == "audio/mpeg" and sniff(b"hello") is None
    assert sniff_image(b"GIF89a" + bytes(10)) is None  # providers' image uploads take PNG, JPEG and WebP
