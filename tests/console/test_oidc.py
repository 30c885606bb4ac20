"""Signing in to the console with the operator's OIDC access token (when OIDC is configured): the session
lasts as long as the token, and the token, like a key, never reaches the browser."""

from __future__ import annotations

import time

import pytest
from conftest import build_apps, own_servers, service_settings
from console.kit import check_page
from opentelemetry.sdk.trace import TracerProvider
from pixsim_runtime.inprocess import serve
from security.conftest import AUDIENCE, ISSUER, IdentityProvider

pytestmark = pytest.mark.system


async def test_sign_in_with_an_oidc_access_token(browser):
    idp = IdentityProvider()
    try:
        with own_servers() as servers:
            settings = service_settings(
                servers,
                db="console_oidc",
                PIXSIM_OIDC_ISSUER=ISSUER,
                PIXSIM_OIDC_AUDIENCE=AUDIENCE,
                PIXSIM_OIDC_JWKS_URL=idp.url,
            )
            async with serve(*build_apps(settings, TracerProvider(), roles=("gateway",))) as served:
                token = idp.token("olivia", role="admin", exp=int(time.time()) + 120)
                context = await browser.new_context(base_url=served[0].url)
                page = await context.new_page()
                await page.goto("/login")
                assert "access token" in await page.locator("label[for='credential']").text_content()
                await check_page(page, "sign-in-oidc")
                await page.get_by_label("API key or access token").fill(token)
                await page.get_by_role("button", name="Sign in").click()
                await page.wait_for_url("**/generations")
                assert "olivia" in await page.get_by_test_id("who").text_content()
                cookie = next(c for c in await context.cookies() if c["name"] == "pixsim_console")
                assert (
                    token not in cookie["value"] and cookie["expires"] <= time.time() + 121
                )  # ends with the token
                await context.close()
    finally:
        idp.stop()
