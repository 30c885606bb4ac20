"""The console's security in the browser: typed markup stays text, users see only their own things and
no admin actions, the session cookie's flags, CSRF on every state change, and signing out."""

from __future__ import annotations

import re

import httpx
import pytest
from console.kit import sign_in, submit_generation
from support import create

pytestmark = pytest.mark.system

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


async def test_a_prompt_with_markup_is_shown_as_text_and_runs_nothing(console_system, browser):
    context, page = await sign_in(browser, console_system.url, console_system.keys["alice"])
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await submit_generation(page, "sim", "text_to_image", {"prompt": HOSTILE, "latency": "0"})
    await page.wait_for_url(re.compile(r"/generations/[A-Za-z0-9_-]+$"))
    assert await page.locator("dd[data-param='prompt']").text_content() == HOSTILE
    assert (
        await page.locator("main img[src='x']").count() == 0
        and await page.locator("main script").count() == 0
    )
    await page.goto("/generations")
    row = page.locator("#generation-rows tr", has_text="window.__pwned").first
    await row.wait_for()
    await page.wait_for_timeout(2500)  # one live refresh of the rows, which inserts server-rendered HTML
    assert await page.evaluate("() => window.__pwned") is None
    assert not dialogs
    resp = await page.request.get("/generations")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert "unsafe-inline" not in resp.headers["content-security-policy"]
    await context.close()


async def test_users_see_only_their_own_generations_and_accounts(console_system, browser):
    async with httpx.AsyncClient(
        base_url=console_system.url, headers={"Authorization": f"Bearer {console_system.keys['bob']}"}
    ) as bob:
        bobs = await create(bob, {"prompt": "bobs secret fox", "latency": 0})
    context, page = await sign_in(browser, console_system.url, console_system.keys["alice"])
    await page.goto("/generations")
    assert await page.locator("#generation-rows", has_text=bobs["id"]).count() == 0
    assert "bobs secret fox" not in await page.content()
    resp = await page.goto(f"/generations/{bobs['id']}")
    assert resp.status == 404 and "bobs secret fox" not in await page.content()
    await page.goto("/accounts")
    assert await page.locator(f"#acc-{console_system.accounts['alice']}").count() == 1
    assert await page.locator(f"#acc-{console_system.accounts['bob']}").count() == 0
    resp = await page.goto(f"/accounts/{console_system.accounts['bob']}")
    assert resp.status == 404
    await page.goto("/keys")
    owners = set(await page.locator("#keys tbody tr td:nth-child(3)").all_text_contents())
    assert owners == {"alice"}
    await context.close()


async def test_a_user_sees_no_admin_actions_and_cannot_use_them(console_system, browser):
    context, page = await sign_in(browser, console_system.url, console_system.keys["alice"])
    await page.goto("/accounts")
    assert await page.locator("#add-account").count() == 0
    await page.goto(f"/accounts/{console_system.accounts['alice']}")
    assert await page.locator("#account-actions").count() == 0
    assert await page.get_by_role("button", name=re.compile("Top up|Sync|Disable|Enable")).count() == 0
    await page.goto("/keys")
    assert await page.locator("#new-key").count() == 0
    # Not shown, and refused if forged with a valid CSRF token all the same.
    csrf = await page.locator("meta[name='csrf-token']").get_attribute("content")
    forged = await page.request.post(
        f"/accounts/{console_system.accounts['alice']}/credits",
        form={"csrf_token": csrf, "credit_type": "sim", "amount": "1000"},
    )
    assert forged.status == 403
    forged = await page.request.post("/keys", form={"csrf_token": csrf, "name": "mine", "role": "admin"})
    assert forged.status == 403
    await context.close()


async def test_the_admin_tops_up_syncs_and_disables_from_the_console(console_system, browser):
    context, page = await sign_in(browser, console_system.url, console_system.keys["admin"])
    account = console_system.accounts["bob"]
    await page.goto(f"/accounts/{account}")
    await page.get_by_label("Amount").fill("25")
    await page.get_by_role("button", name="Top up").click()
    await page.locator(".notice", has_text="Top-up booked").wait_for()
    for _ in range(50):  # billing books the grant a moment later
        await page.goto(f"/accounts/{account}")
        if await page.locator("#ledger tbody tr", has_text="top-up").count():
            break
        await page.wait_for_timeout(200)
    assert await page.locator("#ledger tbody tr", has_text="top-up").count() == 1
    await page.get_by_role("button", name="Disable").click()
    await page.locator("#account-status", has_text="disabled").wait_for()
    await page.get_by_role("button", name="Enable").click()
    await page.locator("#account-status", has_text="active").wait_for()
    await context.close()


async def test_session_cookie_flags_csrf_and_sign_out(console_system, browser):
    context, page = await sign_in(browser, console_system.url, console_system.keys["alice"])
    cookie = next(c for c in await context.cookies() if c["name"] == "pixsim_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert console_system.keys["alice"] not in str(
        await context.cookies()
    )  # the key never reaches the browser
    assert await page.evaluate("() => document.cookie") == ""
    async with httpx.AsyncClient(
        base_url=console_system.url, headers={"Authorization": f"Bearer {console_system.keys['alice']}"}
    ) as alice:
        running = await create(alice, {"prompt": "keep running", "latency": 60})
    # A state change without the session's CSRF token, or from another origin, is refused.
    assert (await page.request.post(f"/generations/{running['id']}/cancel", form={})).status == 403
    csrf = await page.locator("meta[name='csrf-token']").get_attribute("content")
    other = await page.request.post(
        f"/generations/{running['id']}/cancel",
        form={"csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert other.status == 403
    assert (await console_system.api.get(f"/api/v1/generations/{running['id']}")).json()[
        "cancel_requested"
    ] is False
    # The API does not take the cookie: only a bearer credential opens /api/.
    assert (await page.request.get("/api/v1/generations")).status == 401
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/login")
    await page.goto("/generations")
    assert "/login" in page.url  # the session is gone on the server, not just in this browser
    await console_system.api.post(f"/api/v1/generations/{running['id']}/cancel")
    await context.close()


async def test_a_revoked_key_ends_its_console_session(console_system, browser):
    made = await console_system.api.post("/api/v1/keys", json={"name": "short-lived", "owner": "carol"})
    key = made.json()
    context, page = await sign_in(browser, console_system.url, key["token"])
    assert (await console_system.api.delete(f"/api/v1/keys/{key['id']}")).status_code == 200
    await page.goto("/generations")
    assert "/login" in page.url
    await page.get_by_label("API key").fill(key["token"])
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#credential-error").wait_for()
    await context.close()
