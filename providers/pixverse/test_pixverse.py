"""Every Pixverse operation against the fake over real HTTP: submit -> poll -> completed with a
downloadable result, and every documented status code mapped. Fixtures: conftest.py."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import httpx
from pixsim_provider_sdk import GenerationContext, OperationType, ProviderStatus
from pixsim_provider_sdk.files import cleanup_temp_paths, resolve_source

O = OperationType
T2V, I2V, EXTEND, TRANSITION = O.TEXT_TO_VIDEO, O.IMAGE_TO_VIDEO, O.VIDEO_EXTEND, O.VIDEO_TRANSITION
FUSION, T2I, I2I = O.FUSION, O.TEXT_TO_IMAGE, O.IMAGE_TO_IMAGE
C, P, F, X = (
    ProviderStatus.COMPLETED,
    ProviderStatus.PROCESSING,
    ProviderStatus.FAILED,
    ProviderStatus.FILTERED,
)
PNG = b"\x89PNG\r\n\x1a\n"


async def test_text_to_video_on_the_webapi(pv, download):
    result = await pv.submit(duration=3, quality="540p")
    assert result.provider_job_id.isdigit() and result.metadata["api_method"] == "webapi"
    final, seen = await pv.wait(result.provider_job_id)

    assert final.status is C and (final.width, final.height, final.duration_sec) == (960, 540, 3.0)
    progress = [s.progress for s in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0 and any(0 < p < 1 for p in progress)
    assert any(s.status is P and s.video_url is None for s in seen), "placeholders are never results"
    video, thumb = await download(final.video_url), await download(final.thumbnail_url)
    assert video.headers["content-type"] == "video/mp4" and video.content[4:8] == b"ftyp"
    assert thumb.headers["content-type"] == "image/png" and thumb.content.startswith(PNG)
    (sent,) = pv.sent("/creative_platform/video/t2v")
    capture = pv.fake.valid_raw_data()["cookies"]
    assert sent.headers["token"] == capture["_ai_token"] and sent.headers["refresh"] == "credit"
    assert sent.headers["ai-trace-id"] == capture["_pxs7_trace_id"] and sent.headers["x-platform"] == "Web"
    assert sent.json == {
        "model": "v5", "quality": "540p", "duration": 3, "aspect_ratio": "16:9",
        "prompt": "a red fox in the snow", "create_count": 1, "lip_sync_tts_speaker_id": "Auto",
    }  # fmt: skip
    polls = pv.sent("/creative_platform/video/list/personal")
    assert polls and "refresh" not in polls[0].headers


async def test_text_to_video_on_the_openapi_bills_the_openapi_pool(harness, download):
    pv = await harness(quota=1000)
    params = {"prompt": "a lighthouse", "api_method": "openapi", "quality": "720p"}
    assert pv.provider.estimate_credits(T2V, params) == {"openapi": 60}
    result = await pv.provider.execute(T2V, pv.account, pv.provider.map_parameters(T2V, params))
    assert result.provider_job_id.startswith("openapi:")
    assert pv.fake.balance("openapi") == 940 and pv.fake.balance("web") == 1000
    final, _ = await pv.wait(result.provider_job_id)
    assert final.status is C and (await download(final.video_url)).status_code == 200
    calls = [r for r in pv.fake.requests if r.path.startswith("/openapi/v2/")]
    assert all(r.headers["api-key"] == pv.fake.api_key() and "token" not in r.headers for r in calls)
    assert len({r.headers["ai-trace-id"] for r in calls}) == len(calls), "a fresh Ai-trace-id per request"


async def test_image_to_video_uploads_a_prepared_file(pv, sources, tiny_png, download):
    params = {
        "prompt": "make it move",
        "image_url": sources.add("start.png", tiny_png),
        "camera_movement": "zoom_in",
    }
    generation = GenerationContext(id="g1", provider_id="pixverse", operation_type=I2V, params=params)
    assert pv.provider.requires_file_preparation()
    mapped = pv.provider.map_parameters(I2V, params)
    mapped = await pv.provider.prepare_execution_params(generation, mapped, resolve_source)
    assert len(mapped["_temp_paths"]) == 1 and Path(mapped["local_sources"]["0"]).read_bytes() == tiny_png
    try:
        result = await pv.provider.execute(I2V, pv.account, mapped)
    finally:
        cleanup_temp_paths(mapped["_temp_paths"])  # what the dispatcher does, whatever happened
    assert not Path(mapped["_temp_paths"][0]).exists()

    (upload,) = pv.sent("/openapi/v2/image/upload")
    assert upload.headers["content-type"].startswith("multipart/form-data")
    ((path, data, content_type),) = pv.fake.uploads.values()
    assert data == tiny_png and content_type == "image/png"
    body = pv.sent("/creative_platform/video/i2v")[0].json
    assert body["customer_img_path"] == path and body["customer_img_url"] == f"{pv.fake.url}/{path}"
    assert "aspect_ratio" not in body and body["camera_movement"] == "zoom_in"
    final, _ = await pv.wait(result.provider_job_id, I2V)
    assert final.status is C and (await download(final.video_url)).content[4:8] == b"ftyp"


async def test_image_to_video_reuses_pixverse_media_without_upload(pv):
    params = {"prompt": "pan left", "image_url": await pv.image()}
    generation = GenerationContext(id="g2", provider_id="pixverse", operation_type=I2V, params=params)
    mapped = await pv.provider.prepare_execution_params(
        generation, pv.provider.map_parameters(I2V, params), resolve_source
    )
    assert mapped["_temp_paths"] == [] and mapped["local_sources"] == {}
    result = await pv.provider.execute(I2V, pv.account, mapped)
    assert not pv.sent("/image/upload")
    assert (await pv.wait(result.provider_job_id, I2V))[0].status is C


async def test_unprepared_foreign_sources_are_fetched_and_uploaded(harness):
    elsewhere = await harness()  # another host: its media is not Pixverse's for the adapter below
    foreign_url = await elsewhere.image()
    pv = await harness()
    params = {"prompt": "@image1 meets @image2", "api_method": "openapi", "image_urls": [foreign_url] * 2}
    result = await pv.provider.execute(FUSION, pv.account, params)  # canonical params, not prepared
    assert len(pv.fake.uploads) == 2
    body = pv.sent("/openapi/v2/video/fusion/generate")[0].json
    assert body["prompt"] == "@1 meets @2"
    assert [r["img_id"] for r in body["image_references"]] == list(pv.fake.uploads)
    assert (await pv.wait(result.provider_job_id, FUSION))[0].status is C


async def test_video_extend_by_id_and_by_url(pv):
    first = await pv.submit(duration=4)
    done, _ = await pv.wait(first.provider_job_id)
    by_id = await pv.submit(EXTEND, original_video_id=first.provider_job_id, duration=5)
    by_url = await pv.submit(EXTEND, video_url=done.video_url, model="v5.5")
    bodies = [r.json for r in pv.sent("/creative_platform/video/extend")]
    assert bodies[0]["original_video_id"] == int(first.provider_job_id) and bodies[0]["credit_change"] == 20
    assert bodies[1]["customer_video_url"] == done.video_url and bodies[1]["platform"] == "web"
    for job in (by_id, by_url):
        final, _ = await pv.wait(job.provider_job_id, EXTEND)
        assert final.status is C and final.duration_sec == 5.0
    openapi = await pv.submit(api_method="openapi")
    await pv.wait(openapi.provider_job_id)
    extended = await pv.submit(EXTEND, original_video_id=openapi.provider_job_id, api_method="openapi")
    assert pv.sent("/openapi/v2/video/extend")[0].json["video_id"] == int(openapi.provider_job_id[8:])
    assert (await pv.wait(extended.provider_job_id, EXTEND))[0].status is C


async def test_video_transition_and_fusion_on_the_webapi(pv):
    frames = await asyncio.gather(*(pv.image() for _ in range(3)))
    transition = await pv.submit(
        TRANSITION, image_urls=frames, prompts=["dawn", "dusk"], durations=[2, 9], quality="540p"
    )
    body = pv.sent("/creative_platform/video/frames")[0].json
    assert body["durations"] == [2, 8] and body["prompts"] == ["dawn", "dusk"]
    assert body["customer_img_urls"] == frames and len(body["customer_img_paths"]) == 3
    final, _ = await pv.wait(transition.provider_job_id, TRANSITION)
    assert final.status is C and final.duration_sec == 10.0
    fusion = await pv.submit(FUSION, prompt="a cat on a sofa", image_urls=frames[:2])
    assert pv.sent("/creative_platform/video/fusion")[0].json["prompt"] == "a cat on a sofa @1 @2"
    assert (await pv.wait(fusion.provider_job_id, FUSION))[0].status is C


async def test_text_and_image_to_image(pv, download):
    t2i = await pv.submit(T2I, aspect_ratio="1:1")
    first, _ = await pv.wait(t2i.provider_job_id, T2I)
    assert first.status is C and first.video_url is None and (first.width, first.height) == (720, 720)
    image = (await download(first.image_url)).content
    assert image.startswith(PNG) and struct.unpack(">II", image[16:24]) == (720, 720)
    i2i = await pv.submit(I2I, image_urls=[first.image_url], model="seedream-4.0", quality="2k")
    body = pv.sent("/creative_platform/image/i2i")[-1].json
    assert body["quality"] == "1440p" and body["customer_img_urls"] == [first.image_url]
    assert body["credit_change"] == 10
    final, _ = await pv.wait(i2i.provider_job_id, I2I)
    assert final.status is C and (final.width, final.height) == (2560, 1440)


# -- status codes: the fake pinned at each documented code ------------------------------------------
NATIVE_VIDEO = [(1, True, C), (10, True, C), (10, False, P), (0, False, P), (2, False, P), (5, False, P),
                (-1, False, F), (4, False, F), (8, False, F), (9, False, F), (3, False, X), (7, False, X),
                (17, False, X), (42, False, P)]  # fmt: skip
PARTNER_VIDEO = [
    (1, C),
    (0, P),
    (2, P),
    (5, P),
    (9, P),
    (10, P),
    (8, X),
    (3, X),
    (7, X),
    (17, X),
    (-1, F),
    (4, F),
]
IMAGES = [(1, C), (0, P), (2, P), (5, P), (10, P), (7, X), (8, F), (9, F)]
OPENAPI_VIDEO = [(1, C), (5, P), (7, X), (8, F)]


def check_mapping(status, expected, code) -> None:
    assert status.status is expected, (code, status)
    assert status.metadata["provider_status"] == code
    if expected is C:
        assert status.progress == 1.0 and (status.video_url or status.image_url) and status.width
    elif expected is P:
        assert 0 <= status.progress < 1 and status.video_url is None and status.image_url is None
    elif expected is X:
        assert status.error_code.startswith("content_") and status.error_message
    else:
        assert status.error_code == "generation_failed" and str(code) in status.error_message


async def test_every_documented_status_code_maps(harness, download):
    pv = await harness(latency=60)
    native = (await pv.submit()).provider_job_id
    partner = (await pv.submit(model="grok-imagine", quality="480p")).provider_job_id
    image = (await pv.submit(T2I)).provider_job_id
    openapi = (await pv.submit(api_method="openapi")).provider_job_id
    for job_id, op, cases in [
        (native, T2V, NATIVE_VIDEO),
        (partner, T2V, [(code, False, expected) for code, expected in PARTNER_VIDEO]),
        (image, T2I, [(code, False, expected) for code, expected in IMAGES]),
        (openapi, T2V, [(code, False, expected) for code, expected in OPENAPI_VIDEO]),
    ]:
        for code, sized, expected in cases:
            pv.fake.set_status(job_id, code, sized=sized)
            check_mapping(await pv.provider.check_status(pv.account, job_id, op), expected, code)
    pv.fake.set_status(partner, 8)
    assert (await pv.provider.check_status(pv.account, partner, T2V)).error_code == "content_partner_refused"
    pv.fake.set_status(native, 7)
    assert (await pv.provider.check_status(pv.account, native, T2V)).error_code == "content_render_moderated"
    pv.fake.set_status(native, 10, sized=True)  # the early-CDN state: finished, real URLs already served
    early = await pv.provider.check_status(pv.account, native, T2V)
    assert (await download(early.video_url)).status_code == 200


def test_status_words_and_placeholders(internal):
    status = internal("status")
    words = ("success", "queued", "failed", "interrupted", "cancelled")
    assert [status.map_status(w, image=False) for w in words] == [C, P, F, X, ProviderStatus.CANCELLED]
    placeholder = "https://media.pixverse.ai/pixverse/mp4/media/default.mp4"
    record = {"video_status": 1, "url": placeholder, "output_width": 640, "output_height": 360}
    pending = status.to_result(record, image=False)
    assert pending.status is P and pending.metadata["media_url_pending"] and pending.video_url is None


async def test_moderated_output_ends_filtered_and_is_taken_down(pv, download):
    result = await pv.submit(prompt="a scene with nsfw-output in it")
    final, _ = await pv.wait(result.provider_job_id)
    assert final.status is X and final.error_code == "content_render_moderated" and final.video_url is None
    job = pv.fake.jobs[int(result.provider_job_id)]
    assert (await download(f"{pv.fake.url}/{job.files()['video']}")).status_code == 404


async def test_failed_jobs_are_refunded(harness):
    pv = await harness(fail_rate=1.0, latency=0, quota=100)
    result = await pv.submit()
    final, _ = await pv.wait(result.provider_job_id)
    assert final.status is F and pv.fake.balance("web") == 100


# -- the fake itself -----------------------------------------------------------------------------------
async def test_fake_message_feed_announces_each_finished_job_once(pv):
    result = await pv.submit()
    await pv.wait(result.provider_job_id)
    async with httpx.AsyncClient(
        base_url=pv.fake.url, headers={"token": pv.account.credentials["jwt_token"]}
    ) as c:
        first = (await c.post("/creative_platform/account/message", json={})).json()["Resp"]
        again = (await c.post("/creative_platform/account/message", json={})).json()["Resp"]
        credits = (await c.get("/creative_platform/user/credits")).json()
        info = (await c.get("/creative_platform/getUserInfo")).json()["Resp"]
    assert first["video_list"] == [int(result.provider_job_id)] and again["video_list"] == []
    assert (
        credits["ErrCode"] == 0 and credits["Resp"]["credit_package"] > 0 and info["Mail"] == pv.account.email
    )
