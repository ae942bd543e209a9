"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): refused without a
token, signed in through the form (an HttpOnly, SameSite=Strict session cookie), then showing the
traffic, the top refusing source, security events, an alert and an expiring key, with no request
leaving the admin listener and no Content-Security-Policy violation. The screenshot is kept in
``test-artifacts/dashboard.png`` (and the test's tmp dir)."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

from bastion.admin.history import status_mix
from bastion.config.models import BastionConfig
from bastion.observability.events import SecurityEvent
from tests.admin.helpers import config_doc, running, tokens
from tests.engine.upstream_app import Upstream

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


async def test_dashboard_in_chromium(upstream: Upstream, tmp_path: Path) -> None:
    secrets = tokens()
    config = BastionConfig.model_validate(config_doc(tmp_path, upstream.url, secrets))
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.base) as api:
        key = await gw.plane.keys.create("acme", ("orders:read",), None, "ci", 2 * 86400.0)
        for _ in range(60):  # the key sync picks the new key up within its interval
            if (await api.get("/x", headers={"x-api-key": key["secret"]})).status_code == 200:
                break
            await asyncio.sleep(0.05)
        for _ in range(30):
            assert (
                await api.get("/orders", headers={"x-api-key": key["secret"]})
            ).status_code == 200
        for _ in range(12):
            assert (await api.get("/orders")).status_code == 401
        gw.recent.emit(
            SecurityEvent(
                "alert.auth_failure_spike",
                "unknown",
                time.time(),
                "detector",
                client_ip="127.0.0.1",
                fields={"count": 12},
            )
        )
        await asyncio.sleep(2.2)  # two traffic samples: the rate chart has a line

        async with httpx.AsyncClient(base_url=gw.admin_url) as admin:
            assert (await admin.get("/dashboard/data")).status_code == 401

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            context = await browser.new_context(viewport={"width": 1280, "height": 1100})
            page = await context.new_page()
            requested: list[str] = []
            console: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.on("console", lambda message: console.append(message.text))

            # No token: refused, and the page is the sign-in form, with no data on it.
            answer = await page.goto(f"{gw.admin_url}/dashboard")
            assert answer is not None
            assert answer.status == 401
            assert await page.locator("input[name=token]").count() == 1
            assert "Requests per second" not in await page.content()

            await page.fill("input[name=token]", "bsa_" + "w" * 43)
            await page.click("button[type=submit]")
            assert "not valid" in await page.locator(".error").inner_text()

            await page.fill("input[name=token]", secrets["viewer"])
            await page.click("button[type=submit]")
            await page.wait_for_selector("body[data-loaded=true]", timeout=10_000)
            assert page.url == f"{gw.admin_url}/dashboard"
            cookies = await context.cookies()
            assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
                ("bastion_admin", True, "Strict")
            ]
            assert secrets["viewer"] not in cookies[0]["value"]

            served = status_mix(gw.public.stats.snapshot())  # what the page must show
            assert served["4xx"] >= 12
            assert served["2xx"] >= 30
            assert int(await page.locator("#total").inner_text()) == sum(served.values())
            mix = await page.locator("#mix-table").inner_text()
            assert f"2xx\t{served['2xx']}\t" in mix
            assert f"4xx\t{served['4xx']}\t" in mix
            assert await page.locator("#rate-chart path").count() >= 1
            assert await page.locator("#latency-chart path.p95").count() == 1
            assert await page.locator("#latency-chart circle.p95").count() >= 1
            assert float(await page.locator("#p95-now").inner_text()) > 0
            refusals = await page.locator("#refusals-chart").text_content()
            assert refusals is not None
            assert "127.0.0.1" in refusals
            ((source, count),) = gw.recent.top_refusals()  # every refusal came from loopback
            assert source == "127.0.0.1"
            assert count >= served["4xx"]
            assert refusals == f"127.0.0.1{count}"
            events = await page.locator("#events").inner_text()
            assert "auth.missing_credentials" in events
            assert "alert.auth_failure_spike" in await page.locator("#alerts").inner_text()
            expiring = await page.locator("#expiring").inner_text()
            assert key["id"] in expiring
            assert "expiring" in expiring

            ARTIFACTS.mkdir(exist_ok=True)
            shot = tmp_path / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
            shutil.copy(shot, ARTIFACTS / "dashboard.png")
            assert shot.stat().st_size > 10_000

            # Nothing was fetched from anywhere else; the strict CSP was never violated.
            assert all(url.startswith(gw.admin_url) for url in requested), requested
            assert not [text for text in console if "Content Security Policy" in text], console

            await page.click("header button[type=submit]")  # sign out
            await page.wait_for_selector("input[name=token]")
            answer = await page.goto(f"{gw.admin_url}/dashboard")
            assert answer is not None
            assert answer.status == 401
            await browser.close()
