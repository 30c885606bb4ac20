"""What the console tests share: signing in through the page, axe-core, screenshots, waits in the page."""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from conftest import PROVIDERS, REPO
from pixsim_provider_sdk.testing.fake_http import load_fake

ARTIFACTS = REPO / "test-artifacts" / "console"
AXE_SOURCE = (
    files("axe_playwright_python").joinpath("axe.min.js").read_text()
)  # axe-core, as the package bundles it
BLOCKING = {"serious", "critical"}


async def sign_in(browser: Any, url: str, key: str, *, path: str = "/generations") -> tuple[Any, Any]:
    """A fresh browser context (its own cookies) signed in with `key`; (context, page) on `path`."""
    context = await browser.new_context(
        base_url=url, viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(20_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    await page.goto(f"/login?next={path}")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"**{path}")
    return context, page


async def accessibility_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    # Evaluated through the DevTools protocol, so the page's CSP (no inline script) does not apply to it.
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE_SOURCE)
    result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v.get("impact") in BLOCKING
    ]


async def check_page(page: Any, name: str) -> None:
    """Screenshot the page to test-artifacts/console/<name>.png and fail on serious accessibility problems."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    violations = await accessibility_violations(page)
    assert not violations, f"{name}: {violations}"
    assert not getattr(page, "js_errors", []), f"{name}: script errors {page.js_errors}"


async def submit_generation(page: Any, provider: str, operation: str, fields: dict[str, str]) -> None:
    """Fill the generated form of `provider` / `operation` and submit it."""
    await page.goto(f"/generations/new?provider={provider}&operation={operation}")
    for name, value in fields.items():
        control = page.locator(f"[name='{name}']")
        if await control.evaluate("el => el.tagName") == "SELECT":
            await control.select_option(value)
        else:
            await control.fill(value)
    await page.get_by_role("button", name="Generate").click()


def png_file(directory: Path, key: str, width: int = 64, height: int = 48) -> str:
    """A real PNG (the sim fake's generator) written to `directory`; its path."""
    make_png = sys.modules[load_fake(PROVIDERS / "sim").__module__].make_png
    path = directory / f"{key}.png"
    path.write_bytes(make_png(width, height, key))
    return str(path)
