"""The console end to end in Chromium: sign in, the form made from the parameter spec (an enum, a range,
an uploaded image), the estimate, submit, the progress bar driven by Server-Sent Events, the video
playing and seeking in the page, download, cancel, and the API's 422 beside the field it names."""

from __future__ import annotations

import re

import pytest
from console.kit import check_page, png_file, sign_in, submit_generation

pytestmark = pytest.mark.system


async def test_generate_from_the_spec_form_watch_it_and_play_it(console_system, browser, tmp_path):
    context, page = await sign_in(browser, console_system.url, console_system.keys["alice"])
    await page.goto("/generations/new?provider=sim&operation=image_to_video")
    form = page.locator("#generation-form")
    assert await form.locator("select[name='quality']").count() == 1  # an enum is a select
    duration = form.locator("input[name='duration']")
    assert (await duration.get_attribute("min"), await duration.get_attribute("max")) == (
        "1",
        "20",
    )  # the range
    await form.locator("select[name='quality']").select_option("360p")
    await duration.fill("3")
    await form.locator("input[name='latency']").fill("3")
    await form.locator("textarea[name='prompt']").fill("a fox running through snow")
    await form.locator("input[name='image_url__file']").set_input_files(png_file(tmp_path, "fox"))
    await page.locator("#p-image_url-preview img").wait_for()  # previewed before it is sent
    await page.wait_for_function(
        "() => document.getElementById('estimate').textContent.includes('3 sim credits')"
    )
    await check_page(page, "new-generation")

    await page.get_by_role("button", name="Generate").click()
    await page.wait_for_url(re.compile(r"/generations/[A-Za-z0-9_-]+$"))
    gid = page.url.rsplit("/", 1)[1]
    params = (await console_system.api.get(f"/api/v1/generations/{gid}")).json()["params"]
    assert (
        params["quality"] == "360p" and params["duration"] == 3 and params["image_url"].startswith("asset://")
    )
    first = int(await page.locator("#progress").get_attribute("value"))
    assert first < 100
    # The page is not reloaded: only the event stream moves the bar.
    await page.wait_for_function("() => document.getElementById('progress').value === 100", timeout=30_000)
    assert await page.locator("#timeline li[data-event='progressed']").count() >= 1
    await page.locator("#status .status-completed").wait_for()

    player = page.locator("video#player")
    await player.wait_for(timeout=90_000)  # shown once archived; a loaded machine is slow
    await page.wait_for_function(
        "() => document.querySelector('video#player').readyState >= 2", timeout=20_000
    )
    duration_s = await player.evaluate("v => v.duration")
    assert duration_s > 0
    assert await player.evaluate("v => { v.muted = true; return v.play().then(() => true); }")
    await page.wait_for_function("() => document.querySelector('video#player').currentTime > 0")
    await player.evaluate("v => { v.pause(); v.currentTime = 2; }")  # seeking needs range requests
    await page.wait_for_function(
        "() => Math.abs(document.querySelector('video#player').currentTime - 2) < 0.3 "
        "&& !document.querySelector('video#player').seeking"
    )
    await check_page(page, "generation")

    async with page.expect_download() as info:
        await page.get_by_role("link", name="Download").click()
    download = await info.value
    assert download.suggested_filename == f"{gid}.mp4"
    assert (await download.path()).read_bytes()[4:8] == b"ftyp"
    await context.close()


async def test_cancel_a_running_job(console_system, browser):
    context, page = await sign_in(browser, console_system.url, console_system.keys["alice"])
    await submit_generation(page, "sim", "text_to_video", {"prompt": "a slow sunrise", "latency": "60"})
    await page.wait_for_url(re.compile(r"/generations/[A-Za-z0-9_-]+$"))
    await page.locator("#status .status-processing").wait_for(timeout=20_000)
    await page.get_by_role("button", name="Cancel").click()
    await page.locator("#status .status-cancelled").wait_for(timeout=20_000)
    assert await page.get_by_role("button", name="Cancel").count() == 0
    await context.close()


async def test_the_apis_422_is_shown_beside_the_field(console_system, browser):
    context, page = await sign_in(browser, console_system.url, console_system.keys["alice"])
    await submit_generation(page, "sim", "text_to_video", {"prompt": "too long", "duration": "99"})
    error = page.locator("[data-field='duration'] .field-error")
    await error.wait_for()
    assert "must be <= 20" in await error.text_content()
    assert await page.locator("input[name='duration']").get_attribute("aria-invalid") == "true"
    assert await page.locator("input[name='duration']").input_value() == "99"  # what was typed stays
    assert await page.locator("[data-field='prompt'] .field-error").count() == 0
    await check_page(page, "new-generation-422")
    await context.close()
