"""The dashboard in real Chromium: a staff member allows a domain, copies the embed snippet
with the copy button, pastes it into a page on another origin, and the widget boots there
and answers; and the settings page's live preview shows form values before saving.
"""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tenants.models import Role
from tests.e2e.conftest import (
    SHIPPING_ANSWER,
    SITE_TITLE,
    UI_TIMEOUT,
    HostPages,
    Shop,
    log_in,
)
from tests.factories import MembershipFactory

pytestmark = pytest.mark.e2e


@pytest.fixture
def staff_page(transactional_db, new_context, live_server) -> Page:
    """A browser page whose clipboard the test can read back. Its context comes from the
    conftest's `new_context`, which lets the widget's API calls finish before the context
    closes; `transactional_db` is requested first so its TRUNCATE runs only after that
    (a widget request still in the live server deadlocked with it)."""
    context = new_context(
        permissions=["clipboard-read", "clipboard-write"], base_url=live_server.url
    )
    return context.new_page()


def test_copied_snippet_boots_the_widget_on_another_origin(
    staff_page: Page, live_server, make_shop, host_pages: HostPages
):
    shop: Shop = make_shop(allowed_domains=["shop.example.com"])
    owner = MembershipFactory(tenant=shop.site.tenant, role=Role.OWNER).user
    page = staff_page
    log_in(page, live_server.url, owner.email)

    # 1. Allow the host page's origin through the settings form.
    page.goto(live_server.url + reverse("webchat_dashboard:settings", args=[shop.site.pk]))
    page.fill("#id_allowed_domains", f"shop.example.com\n{host_pages.domain}")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible(timeout=UI_TIMEOUT)

    # 2. Copy the snippet with the button.
    page.goto(live_server.url + reverse("webchat_dashboard:snippet", args=[shop.site.pk]))
    page.get_by_role("button", name="Copy snippet").click()
    expect(page.get_by_role("button", name="Copied ✓")).to_be_visible(timeout=UI_TIMEOUT)
    snippet = page.evaluate("navigator.clipboard.readText()")
    assert snippet == page.inner_text("#snippet")
    assert f'data-site-key="{shop.site.site_key}"' in snippet
    assert re.fullmatch(
        r'<script src="http://[^"]+/static/webchat/loader\.js" data-site-key="wk_[^"]+" async></script>',
        snippet,
    )

    # 3. Paste it into a page on another origin: the widget boots and answers.
    url = host_pages.add(
        f"/{shop.site.site_key}/pasted.html",
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Pasted</title></head>"
        f"<body><h1>A customer's page</h1>{snippet}</body></html>",
    )
    assert not url.startswith(live_server.url)
    visitor = page.context.new_page()
    visitor.goto(url)
    launcher = visitor.locator("#replybase-widget button.launcher")
    expect(launcher).to_be_visible(timeout=UI_TIMEOUT)
    launcher.click()
    expect(visitor.get_by_role("dialog", name=SITE_TITLE)).to_be_visible(timeout=UI_TIMEOUT)
    composer = visitor.get_by_role("textbox", name="Message")
    composer.fill("How long does shipping take?")
    composer.press("Enter")
    expect(
        visitor.locator("#replybase-widget .m.bot", has_text=SHIPPING_ANSWER[:40])
    ).to_be_visible(timeout=UI_TIMEOUT)


def test_live_preview_shows_unsaved_values_without_calling_the_api(
    staff_page: Page, live_server, make_shop
):
    shop: Shop = make_shop()
    owner = MembershipFactory(tenant=shop.site.tenant, role=Role.OWNER).user
    page = staff_page
    api_calls: list[str] = []
    page.on("request", lambda r: "/api/webchat/" in r.url and api_calls.append(r.url))
    log_in(page, live_server.url, owner.email)
    page.goto(live_server.url + reverse("webchat_dashboard:settings", args=[shop.site.pk]))

    preview = page.frame_locator("#preview-frame")
    expect(preview.get_by_role("dialog", name=SITE_TITLE)).to_be_visible(timeout=UI_TIMEOUT)

    page.fill("#id_title", "Ask the trail team")
    page.fill("#id_color", "#ffdd00")
    expect(preview.get_by_role("dialog", name="Ask the trail team")).to_be_visible(
        timeout=UI_TIMEOUT
    )
    header = preview.locator("#replybase-widget header")
    expect(header).to_have_css("background-color", "rgb(255, 221, 0)")
    expect(header).to_have_css("color", "rgb(17, 17, 17)")  # dark text on a light colour
    expect(page.locator("#contrast-warning")).to_contain_text("below the WCAG AA minimum")
    # typing was never interrupted by the preview reloading, and nothing was saved
    assert page.input_value("#id_title") == "Ask the trail team"
    shop.site.refresh_from_db()
    assert shop.site.title == SITE_TITLE
    assert api_calls == []
