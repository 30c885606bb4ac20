"""Every console page as a user and as an admin: axe-core finds no serious or critical accessibility
problem, a screenshot of each goes to test-artifacts/console/, and the pages do what they show
(filters, live rows, provider detection, keys shown once and revoked, the ledger)."""

from __future__ import annotations

import asyncio
import re

import pytest
from console.kit import check_page, sign_in, submit_generation
from playwright.async_api import Browser
from support import create, wait_for

pytestmark = pytest.mark.system


async def test_sign_in_page(console_system, browser: Browser):
    context = await browser.new_context(base_url=console_system.url)
    page = await context.new_page()
    await page.goto("/generations")
    assert "/login" in page.url
    await check_page(page, "sign-in")
    await page.get_by_label("API key").fill("psk_0000000000000000_" + "x" * 43)
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#credential-error").wait_for()
    await check_page(page, "sign-in-refused")
    await context.close()


async def test_generations_list_filters_and_updates_live(console_system, browser: Browser):
    context, page = await sign_in(browser, console_system.url, console_system.keys["alice"])
    await page.goto("/generations?status=processing")
    api = console_system.api
    gen = await create(api, {"prompt": "live row", "latency": 6}, user_id="alice")
    # Appears without a reload (the rows refresh themselves), then leaves this filter once it completes.
    await page.locator("#generation-rows tr", has_text=gen["id"]).wait_for(timeout=15_000)
    await check_page(page, "generations")
    await wait_for(api, gen["id"])
    await page.locator("#generation-rows tr", has_text=gen["id"]).wait_for(state="detached", timeout=15_000)
    await page.goto("/generations?status=completed&provider_id=sim")
    await page.locator("#generation-rows tr", has_text=gen["id"]).wait_for()
    await page.goto("/generations?provider_id=sora")
    assert await page.locator("#generation-rows tr", has_text=gen["id"]).count() == 0
    await context.close()


async def test_a_failed_job_shows_its_error(console_system, browser: Browser):
    context, page = await sign_in(browser, console_system.url, console_system.keys["alice"])
    await submit_generation(
        page, "sim", "text_to_video", {"prompt": "doomed", "outcome": "fail", "latency": "1"}
    )
    await page.wait_for_url(re.compile(r"/generations/[A-Za-z0-9_-]+$"))
    await page.locator("#status .status-failed").wait_for(timeout=20_000)
    assert (await page.locator("#error-code").text_content()).strip()
    assert await page.locator("#failure").is_visible()
    await check_page(page, "generation-failed")
    await context.close()


async def test_providers_page_and_url_detection(console_system, browser: Browser):
    context, page = await sign_in(browser, console_system.url, console_system.keys["alice"])
    await page.goto("/providers")
    sim = page.locator("section.provider", has=page.locator("#provider-sim"))
    text = await sim.text_content()
    for expected in ("text_to_video", "image_to_video", "sim", "queued=pending"):
        assert expected in text
    await page.get_by_label("URL", exact=True).fill("https://sim.pixsim.local/files/x.mp4")
    await page.get_by_role("button", name="Detect").click()
    await page.locator("#detected", has_text="Simulator").wait_for()
    await check_page(page, "providers")
    await page.get_by_label("URL", exact=True).fill("https://unknown.example/x")
    await page.get_by_role("button", name="Detect").click()
    await page.locator("#detected", has_text="no provider").wait_for()
    await context.close()


async def test_the_new_generation_page_changes_with_the_provider(console_system, browser: Browser):
    context, page = await sign_in(
        browser, console_system.url, console_system.keys["alice"], path="/generations/new"
    )
    await page.get_by_label("Provider", exact=True).select_option("sora")
    await page.wait_for_url("**provider=sora**")
    assert await page.locator("#generation-form input[name='provider_id']").get_attribute("value") == "sora"
    assert await page.locator("#generation-form select[name='size']").count() == 1
    await check_page(page, "new-generation-sora")
    await context.close()


async def test_accounts_pages(console_system, browser: Browser):
    context, page = await sign_in(browser, console_system.url, console_system.keys["admin"])
    await page.goto("/accounts")
    for user in ("alice", "bob"):
        await page.locator(f"#acc-{console_system.accounts[user]}").wait_for()
    await check_page(page, "accounts")
    await page.get_by_label("Raw data (JSON: the browser capture or API key)").fill("{not json")
    await page.get_by_role("button", name="Add account").click()
    await page.locator("#add-account .error", has_text="JSON").wait_for()
    await page.goto(f"/accounts/{console_system.accounts['alice']}")
    table = page.locator("table.balances")
    assert "Available" in await table.text_content()
    assert await page.locator("#ledger tbody tr", has_text="opening balance").count() == 1
    await check_page(page, "account")
    await context.close()


async def test_keys_created_shown_once_and_revoked(console_system, browser: Browser):
    context, page = await sign_in(browser, console_system.url, console_system.keys["admin"], path="/keys")
    await page.get_by_label("Name (what it is for)").fill("console test key")
    await page.get_by_label("Owner (user id; default: you)").fill("dora")
    await page.get_by_role("button", name="Create key").click()
    token = await page.locator("#new-token").input_value()
    assert token.startswith("psk_")
    await check_page(page, "keys")
    key_id = token.split("_")[1]
    await page.goto("/keys")
    assert token not in await page.content()  # shown once: never again
    row = page.locator(f"tr[data-key='{key_id}']")
    await row.get_by_role("button", name=re.compile("Revoke")).click()
    await page.locator(".notice", has_text="revoked").wait_for()
    assert "revoked" in await page.locator(f"tr[data-key='{key_id}']").text_content()
    await context.close()


async def test_the_ledger_pages(console_system, browser: Browser):
    api = console_system.api
    made = await api.post(
        "/api/v1/accounts",
        json={
            "provider_id": "sim",
            "raw_data": console_system.fake.valid_raw_data(),
            "owner_id": "pat",
            "credits": {"sim": 1},
        },
    )
    account = made.json()["id"]
    for n in range(24):
        resp = await api.post(
            f"/api/v1/accounts/{account}/credits",
            json={"credit_type": "sim", "amount": n + 1, "reason": f"top-up {n + 1}"},
        )
        assert resp.status_code == 202, resp.text
    for _ in range(200):  # billing books them a moment later
        page_one = (await api.get(f"/api/v1/accounts/{account}/ledger", params={"limit": 100})).json()[
            "items"
        ]
        if len(page_one) == 25:
            break
        await asyncio.sleep(0.1)
    context, page = await sign_in(
        browser, console_system.url, console_system.keys["admin"], path=f"/accounts/{account}"
    )
    assert await page.locator("#ledger tbody tr").count() == 20
    await page.get_by_role("link", name="Older entries").click()
    await page.wait_for_url("**cursor=**")
    assert await page.locator("#ledger tbody tr").count() == 5
    assert await page.locator("#ledger tbody tr", has_text="opening balance").count() == 1
    await page.get_by_role("link", name="Newest").click()
    assert await page.locator("#ledger tbody tr", has_text="top-up 24").count() == 1
    await context.close()
