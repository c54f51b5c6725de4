"""The embeddable widget in real Chromium, on a host page from another origin.

Each test checks what the visitor sees (through the open shadow root, which Playwright's
locators pierce) and what the database holds afterwards.
"""

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, Response, expect

from bots.models import Engine, FlowAction, FlowTrigger
from crm.models import Direction, Message, SenderType
from support.models import ChatwootConversationLink
from support.services import agent_reply_to_webchat
from tests.e2e.conftest import (
    GREETING,
    RETURNS_ANSWER,
    SHIPPING_ANSWER,
    SITE_TITLE,
    WELCOME,
    Shop,
    eventually,
    stored_session,
)
from tests.factories import FlowRuleFactory
from tests.factories.support import ChatwootConversationLinkFactory
from webchat import services
from webchat.models import EventType, WebChatEvent, WebChatSession

pytestmark = pytest.mark.e2e

API_ROUTES = "**/api/webchat/v1/**"
# Generous for a cold page load; every wait still returns as soon as the condition holds.
UI_TIMEOUT = 10_000
RETURNS_FLOW_REPLY = "Sorry it did not work out! Start a return from Account, then Orders."


class Widget:
    """Locators for the widget as a visitor (and a screen reader) perceives it."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.host = page.locator("#replybase-widget")
        self.launcher = page.locator("#replybase-widget button.launcher")
        self.badge = page.locator("#replybase-widget .badge")
        self.panel = page.get_by_role("dialog", name=SITE_TITLE)
        self.log = page.get_by_role("log")
        self.composer = page.get_by_role("textbox", name="Message")
        self.send_button = page.get_by_role("button", name="Send", exact=True)
        self.close_button = self.panel.locator("header button")
        self.typing = page.locator("#replybase-widget .typing")
        self.alert = self.panel.get_by_role("alert")
        self.quick_replies = page.locator("#replybase-widget .qr button")
        self.pending = page.locator("#replybase-widget .m[data-s]")

    def bubble(self, sender: str, text: str):
        return self.page.locator(f"#replybase-widget .m.{sender}", has_text=text)

    def bubbles(self):
        return self.page.locator("#replybase-widget .m")

    def open(self) -> None:
        expect(self.launcher).to_be_visible(timeout=UI_TIMEOUT)
        self.launcher.click()
        expect(self.panel).to_be_visible(timeout=UI_TIMEOUT)

    def open_and_wait_for_init(self) -> dict:
        """Open the panel and return the `init` answer (session started or resumed)."""
        expect(self.launcher).to_be_visible(timeout=UI_TIMEOUT)
        with self.page.expect_response(_is_api("init"), timeout=UI_TIMEOUT) as init:
            self.launcher.click()
        expect(self.panel).to_be_visible()
        assert init.value.ok, init.value.text()
        return init.value.json()

    def send(self, text: str) -> None:
        self.composer.fill(text)
        self.send_button.click()

    def ask_about_returns(self) -> None:
        """Ask the returns question and wait for the knowledge base's answer."""
        self.send("How do I return an item?")
        expect(self.bubble("bot", RETURNS_ANSWER)).to_be_visible(timeout=UI_TIMEOUT)
        self.expect_settled()

    def expect_settled(self) -> None:
        """No bubble still sending, no typing indicator: nothing left spinning."""
        expect(self.pending).to_have_count(0, timeout=UI_TIMEOUT)
        expect(self.typing).to_be_hidden()


def _is_api(route: str):
    def match(response: Response) -> bool:
        return f"/api/webchat/v1/{route}" in response.url and response.request.method != "OPTIONS"

    return match


def _messages(shop: Shop) -> list[tuple[str, str]]:
    return list(
        Message.objects.filter(tenant_id=shop.site.tenant_id)
        .order_by("id")
        .values_list("sender_type", "text")
    )


def _inbound_texts(shop: Shop) -> list[str]:
    return list(
        Message.objects.filter(tenant_id=shop.site.tenant_id, direction=Direction.INBOUND)
        .order_by("id")
        .values_list("text", flat=True)
    )


def _shoot(page: Page, directory: Path | None, name: str) -> None:
    if directory is not None:
        page.screenshot(path=str(directory / f"replybase-e2e-{name}.png"))


# --- boot, open/close, keyboard ----------------------------------------------------------


def test_embed_boots_opens_closes_and_escape_returns_focus(page: Page, shop: Shop, host_pages):
    w = Widget(page)
    page.goto(shop.url)

    expect(w.launcher).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.launcher).to_have_attribute("aria-label", "Open chat")
    expect(w.launcher).to_have_attribute("aria-expanded", "false")
    expect(w.panel).to_be_hidden()  # closed until the visitor opens it
    assert page.evaluate("document.getElementById('replybase-widget').shadowRoot !== null")

    init = w.open_and_wait_for_init()
    expect(w.log).to_contain_text(WELCOME)
    expect(w.log).to_have_attribute("aria-live", "polite")
    expect(w.launcher).to_have_attribute("aria-expanded", "true")
    expect(w.composer).to_be_focused()

    w.launcher.click()  # the launcher toggles
    expect(w.panel).to_be_hidden()
    expect(w.launcher).to_have_attribute("aria-expanded", "false")

    w.open()
    w.composer.click()
    page.keyboard.press("Escape")
    expect(w.panel).to_be_hidden()
    expect(w.launcher).to_be_focused()

    page.keyboard.press("Enter")  # the focused launcher opens it again from the keyboard
    expect(w.panel).to_be_visible()
    w.close_button.click()
    expect(w.panel).to_be_hidden()

    session = WebChatSession.objects.get(site=shop.site)
    assert session.conversation_id == init["conversation_id"]
    assert session.visitor_id == init["visitor_id"]
    assert session.origin == host_pages.origin
    assert session.page_url == shop.url
    loaded = eventually(
        lambda: WebChatEvent.objects.filter(site=shop.site, type=EventType.WIDGET_LOADED).first(),
        page=page,
        what="the widget_loaded telemetry event",
    )
    assert loaded.tenant_id == shop.site.tenant_id
    assert loaded.payload["data"]["ms"] >= 0
    for event_type in (EventType.LAUNCHER_OPENED, EventType.LAUNCHER_CLOSED):
        eventually(
            lambda t=event_type: WebChatEvent.objects.filter(site=shop.site, type=t).exists(),
            page=page,
            what=f"{event_type} telemetry",
        )
    assert not WebChatEvent.objects.filter(site=shop.site, type=EventType.ERROR).exists()


def test_launcher_shows_a_close_icon_while_the_panel_is_open(page: Page, make_shop):
    shop = make_shop(launcher_text="Chat with us")
    w = Widget(page)
    icon = w.launcher.locator("svg path")
    text = w.launcher.get_by_text("Chat with us")
    page.goto(shop.url)
    expect(w.launcher).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.launcher).to_have_accessible_name("Chat with us")  # what it shows (WCAG 2.5.3)
    expect(text).to_be_visible()
    chat_icon = icon.get_attribute("d")

    w.open()
    expect(w.launcher).to_have_accessible_name("Close chat")
    expect(icon).not_to_have_attribute("d", chat_icon)  # the close (X) icon
    expect(text).to_be_hidden()  # what the button shows matches what it says

    w.launcher.click()
    expect(w.panel).to_be_hidden()
    expect(w.launcher).to_have_accessible_name("Chat with us")
    expect(icon).to_have_attribute("d", chat_icon)
    expect(text).to_be_visible()

    page.evaluate("ReplyBase.open()")  # opened by the host page's code, not the launcher
    expect(w.panel).to_be_visible()
    expect(w.launcher).to_have_accessible_name("Close chat")
    expect(icon).not_to_have_attribute("d", chat_icon)
    page.keyboard.press("Escape")
    expect(w.panel).to_be_hidden()
    expect(icon).to_have_attribute("d", chat_icon)
    expect(w.launcher).to_have_accessible_name("Chat with us")


# --- telemetry: network blips and leaving the page are not errors ----------------------

# The host page's own listener for the widget's `error` event; it writes to localStorage,
# which keeps what a page writes while it unloads (telemetry sent then may be lost).
ERROR_LOG = """
    window.ReplyBase = {q: [["on", "error", (e) => {
        const log = JSON.parse(localStorage.getItem("errors") || "[]")
        localStorage.setItem("errors", JSON.stringify([...log, e.code]))
    }]]}
"""


def _errors_emitted(page: Page) -> list[str]:
    return page.evaluate("JSON.parse(localStorage.getItem('errors') || '[]')")


def _route_polls(page: Page, handle) -> list[str]:
    """Send each `GET messages` to `handle(route, number)`; other calls go through."""
    polls: list[str] = []

    def route(route) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        polls.append(route.request.url)
        handle(route, len(polls))

    page.route("**/api/webchat/v1/messages*", route)
    return polls


def _is_good_poll(response: Response) -> bool:
    return _is_api("messages")(response) and response.request.method == "GET" and response.ok


def _closed_and_flushed(page: Page, w: Widget, shop: Shop) -> None:
    """Close the panel and wait for its telemetry: events tracked before it are stored too."""
    w.launcher.click()
    expect(w.panel).to_be_hidden()
    eventually(
        lambda: WebChatEvent.objects.filter(
            site=shop.site, type=EventType.LAUNCHER_CLOSED
        ).exists(),
        page=page,
        what="launcher_closed telemetry",
    )


def _error_codes(shop: Shop) -> list[str]:
    events = WebChatEvent.objects.filter(site=shop.site, type=EventType.ERROR).order_by("id")
    return [event.payload["data"]["code"] for event in events]


def test_a_poll_cut_once_then_answered_is_not_an_error(page: Page, shop: Shop):
    page.add_init_script(ERROR_LOG)
    w = Widget(page)
    page.goto(shop.url)
    polls = _route_polls(
        page, lambda route, n: route.abort("aborted") if n == 1 else route.continue_()
    )
    with page.expect_response(_is_good_poll, timeout=UI_TIMEOUT):  # the retry
        w.open_and_wait_for_init()
    assert len(polls) == 2
    expect(w.alert).to_be_hidden()
    _closed_and_flushed(page, w, shop)

    assert _errors_emitted(page) == []
    assert _error_codes(shop) == []


def test_a_poll_cut_twice_in_a_row_is_one_error(page: Page, shop: Shop):
    page.add_init_script(ERROR_LOG)
    w = Widget(page)
    page.goto(shop.url)
    polls = _route_polls(
        page, lambda route, n: route.abort("aborted") if n <= 2 else route.continue_()
    )
    with page.expect_response(_is_good_poll, timeout=UI_TIMEOUT):  # the second retry
        w.open_and_wait_for_init()
    assert len(polls) == 3
    _closed_and_flushed(page, w, shop)

    assert _errors_emitted(page) == ["network"]
    eventually(lambda: _error_codes(shop) == ["network"], page=page, what="one error event")


def test_leaving_the_page_mid_poll_is_not_an_error(page: Page, shop: Shop, monkeypatch):
    # The poll in flight when the visitor leaves is a retry (the first try was cut), so only
    # knowing that the page unloads keeps its abort from counting as a second failure.
    # The retry is held inside the live server (same process, another thread) so it is
    # certainly in flight when the visitor leaves. (Holding it with page.route would also
    # catch the keepalive telemetry flush of the page being left, which then never arrives.)
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()
    poll = services.messages_poll

    def held_poll(**kwargs):
        entered.set()
        release.wait(10)
        try:
            return poll(**kwargs)
        finally:
            finished.set()

    page.add_init_script(ERROR_LOG)
    w = Widget(page)
    page.goto(shop.url)
    with page.expect_response(_is_good_poll, timeout=UI_TIMEOUT):  # the first poll after opening
        w.open_and_wait_for_init()
    w.launcher.click()
    expect(w.panel).to_be_hidden()

    polls = _route_polls(
        page, lambda route, n: route.abort("aborted") if n == 1 else route.continue_()
    )
    monkeypatch.setattr(services, "messages_poll", held_poll)
    w.launcher.click()  # opening polls at once: cut
    eventually(entered.is_set, page=page, what="the retry to reach the server")
    page.unroute("**/api/webchat/v1/messages*")
    page.goto(shop.url + "?page=2")  # the visitor follows a link to another page of the shop
    release.set()
    assert finished.wait(10)
    monkeypatch.undo()

    eventually(  # the first page's telemetry, flushed on pagehide
        lambda: WebChatEvent.objects.filter(
            site=shop.site, type=EventType.LAUNCHER_CLOSED
        ).exists(),
        page=page,
        what="the first page's telemetry",
    )
    assert len(polls) == 2  # the cut poll and the held retry
    # What the first page's widget emitted while it unloaded, as the page's listener saw it
    # (certain, where its telemetry sent during the unload may or may not get out).
    assert _errors_emitted(page) == []
    assert _error_codes(shop) == []


# --- messaging ---------------------------------------------------------------------------


def test_message_roundtrip_shows_the_knowledge_base_answer(
    page: Page, shop: Shop, screenshot_dir: Path | None
):
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()

    w.send("How do I return an item?")
    expect(w.bubble("visitor", "How do I return an item?")).to_be_visible()
    expect(w.composer).to_have_value("")
    expect(w.bubble("bot", GREETING)).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.bubble("bot", RETURNS_ANSWER)).to_be_visible(timeout=UI_TIMEOUT)
    w.expect_settled()
    # Read top to bottom: welcome, the question, the greeting flow, the answer.
    expect(w.bubbles()).to_have_count(4)
    texts = w.bubbles().all_inner_texts()
    for position, expected in enumerate([WELCOME, "How do I return", GREETING, "30 days"]):
        assert expected in texts[position], texts
    _shoot(page, screenshot_dir, "desktop")

    assert _messages(shop) == [
        (SenderType.VISITOR, "How do I return an item?"),
        (SenderType.BOT, GREETING),
        (SenderType.BOT, RETURNS_ANSWER),
    ]
    answer = Message.objects.filter(tenant_id=shop.site.tenant_id).order_by("id").last()
    assert answer.metadata["ai_outcome"] == "answered"
    assert shop.conversation().pending_reply_since is None


def test_quick_reply_click_shows_its_label_and_sends_its_value(page: Page, shop: Shop):
    # A button rule answers the exact value of the "Returns" button: the flow engine
    # matches on the value, so that is what the widget sends and the server stores.
    FlowRuleFactory(
        bot=shop.site.bot,
        position=1,
        trigger=FlowTrigger.BUTTON,
        pattern="How do I return an item?",
        action=FlowAction.REPLY,
        reply_text=RETURNS_FLOW_REPLY,
    )
    w = Widget(page)
    visitor = w.page.locator("#replybase-widget .m.visitor")
    page.goto(shop.url)
    w.open_and_wait_for_init()

    w.send("Hi")
    expect(w.bubble("bot", GREETING)).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.quick_replies).to_have_text(["Shipping times", "Returns"])

    w.quick_replies.filter(has_text="Returns").click()
    expect(visitor).to_have_text(["You: Hi", "You: Returns"])  # the label, not the value
    expect(w.bubble("bot", RETURNS_FLOW_REPLY)).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.quick_replies).to_have_count(0)  # the answered question's buttons are gone
    w.expect_settled()
    expect(visitor).to_have_text(["You: Hi", "You: Returns"])

    assert _inbound_texts(shop) == ["Hi", "How do I return an item?"]
    assert _messages(shop)[-1] == (SenderType.BOT, RETURNS_FLOW_REPLY)
    page.reload()  # the stored value reads as the label in the history too
    w.open_and_wait_for_init()
    expect(w.bubble("bot", RETURNS_FLOW_REPLY)).to_be_visible(timeout=UI_TIMEOUT)
    expect(visitor).to_have_text(["You: Hi", "You: Returns"])


def test_a_keyboard_user_on_a_quick_reply_keeps_their_place_as_messages_arrive(
    page: Page, shop: Shop
):
    """The visitor tabbed to a button of the greeting. A bot message that follows it in
    the same turn (an answer a worker computed) keeps the buttons, and the focus on them;
    an agent's message, which ends the turn, takes the buttons away and the focus goes to
    the composer, not to the top of the host page."""
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()
    w.send("Hi")
    expect(w.bubble("bot", GREETING)).to_be_visible(timeout=UI_TIMEOUT)
    w.expect_settled()
    w.composer.focus()
    page.keyboard.press("Shift+Tab")  # from the composer to the last button
    returns = w.quick_replies.filter(has_text="Returns")
    expect(returns).to_be_focused()

    conversation = shop.conversation()
    Message.objects.create(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        direction=Direction.OUTBOUND,
        sender_type=SenderType.BOT,
        text="An answer computed by a worker.",
    )
    expect(w.bubble("bot", "An answer computed")).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.quick_replies).to_have_text(["Shipping times", "Returns"])
    expect(returns).to_be_focused()

    _agent_reply(shop, "Ana here: how can I help?")
    expect(w.bubble("agent", "Ana here")).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.quick_replies).to_have_count(0)
    expect(w.composer).to_be_focused()


def test_quick_reply_value_reaches_the_knowledge_base(page: Page, shop: Shop):
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()
    w.send("Hi")
    expect(w.bubble("bot", GREETING)).to_be_visible(timeout=UI_TIMEOUT)

    w.quick_replies.filter(has_text="Shipping times").click()
    expect(w.bubble("visitor", "Shipping times")).to_be_visible()
    expect(w.bubble("bot", SHIPPING_ANSWER)).to_be_visible(timeout=UI_TIMEOUT)
    w.expect_settled()
    expect(w.bubble("visitor", "How long does shipping take?")).to_have_count(0)
    assert _inbound_texts(shop) == ["Hi", "How long does shipping take?"]
    assert _messages(shop)[-1] == (SenderType.BOT, SHIPPING_ANSWER)


def test_reload_resumes_the_conversation(page: Page, shop: Shop):
    w = Widget(page)
    page.goto(shop.url)
    first = w.open_and_wait_for_init()
    assert first["resumed"] is False
    w.ask_about_returns()
    assert stored_session(page, shop)["conversation_id"] == first["conversation_id"]

    page.reload()
    again = w.open_and_wait_for_init()
    assert again["resumed"] is True
    assert again["conversation_id"] == first["conversation_id"]
    assert again["visitor_id"] == first["visitor_id"]
    expect(w.bubble("visitor", "How do I return an item?")).to_have_count(1, timeout=UI_TIMEOUT)
    expect(w.bubble("bot", GREETING)).to_have_count(1)
    expect(w.bubble("bot", RETURNS_ANSWER)).to_have_count(1)

    w.send("How long does shipping take?")
    expect(w.bubble("bot", SHIPPING_ANSWER)).to_be_visible(timeout=UI_TIMEOUT)
    w.expect_settled()

    conversation = shop.conversation()  # exactly one conversation for the tenant
    assert conversation.pk == first["conversation_id"]
    assert _inbound_texts(shop) == ["How do I return an item?", "How long does shipping take?"]
    assert WebChatSession.objects.filter(site=shop.site).count() == 1


# --- the unread badge --------------------------------------------------------------------


def _is_poll(response: Response) -> bool:
    return "/api/webchat/v1/messages" in response.url and response.request.method == "GET"


def _is_sent(response: Response) -> bool:
    return "/api/webchat/v1/messages" in response.url and response.request.method == "POST"


def _agent_reply(shop: Shop, text: str, chatwoot_message_id: int = 501):
    """An agent's reply from Chatwoot, stored the way the webhook stores it."""
    conversation = shop.conversation()
    link = ChatwootConversationLink.objects.filter(conversation=conversation).first()
    if link is None:
        link = ChatwootConversationLinkFactory(
            connection__tenant=conversation.tenant, conversation=conversation
        )
    return agent_reply_to_webchat(
        link=link, chatwoot_message_id=chatwoot_message_id, text=text, agent_name="Ana"
    )


def test_a_reply_while_the_panel_is_closed_shows_on_the_badge_until_the_visitor_opens_it(
    page: Page, shop: Shop
):
    page.clock.install()  # the closed widget polls every 30 s: jump there
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()
    w.ask_about_returns()
    w.close_button.click()
    expect(w.badge).to_be_hidden()

    _agent_reply(shop, "Ana here: your return label is on its way.")
    with page.expect_response(_is_poll, timeout=UI_TIMEOUT):
        page.clock.fast_forward(31_000)
    expect(w.badge).to_have_text("1", timeout=UI_TIMEOUT)
    expect(w.launcher).to_have_attribute("aria-label", "Open chat, 1 unread")

    page.reload()  # not seen yet: the next page shows it too
    expect(w.badge).to_have_text("1", timeout=UI_TIMEOUT)

    w.open()
    expect(w.bubble("agent", "Ana here")).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.badge).to_be_hidden()
    expect(w.launcher).to_have_attribute("aria-label", "Close chat")
    w.close_button.click()

    page.reload()  # seen: the next page's first poll counts nothing
    with page.expect_response(_is_poll, timeout=UI_TIMEOUT) as poll:
        expect(w.launcher).to_be_visible(timeout=UI_TIMEOUT)
    assert poll.value.ok
    expect(w.badge).to_be_hidden()
    expect(w.launcher).to_have_attribute("aria-label", "Open chat")


@pytest.mark.parametrize("leaves", [False, True], ids=["stays on the page", "next page"])
def test_a_reply_stored_just_before_the_visitors_message_still_counts_as_unread(
    page: Page, shop: Shop, leaves: bool
):
    """The agent's reply commits after the open panel's last poll and before the visitor's
    next message, so it has the lower id, and the message's answer does not bring it. The
    visitor closes the panel before the next poll: they have not seen it. The closed
    widget's poll still brings it (its cursor never follows a POST's answer), and a next
    page's badge counts it too."""
    page.clock.install()
    w = Widget(page)
    page.goto(shop.url)
    with page.expect_response(_is_poll, timeout=UI_TIMEOUT):
        w.open_and_wait_for_init()
    # No poll from here on until the clock is told to (a number would be read as seconds).
    now = datetime.fromtimestamp(page.evaluate("Date.now()") / 1000, tz=UTC)
    page.clock.pause_at(now + timedelta(seconds=1))

    reply = _agent_reply(shop, "Ana here: I found your order.")
    with page.expect_response(_is_sent, timeout=UI_TIMEOUT) as sent:
        w.send("What are your opening hours?")
    answer = sent.value.json()
    assert reply.pk < answer["message"]["id"]
    assert reply.pk not in [r["id"] for r in answer["replies"]]
    w.expect_settled()
    expect(w.bubble("agent", "Ana here")).to_have_count(0)  # not polled yet
    w.close_button.click()

    if leaves:
        page.clock.resume()
        page.reload()
    else:
        with page.expect_response(_is_poll, timeout=UI_TIMEOUT) as poll:
            page.clock.fast_forward(31_000)
        assert [m["id"] for m in poll.value.json()["messages"]][:1] == [reply.pk]
        page.clock.resume()
    expect(w.badge).to_have_text("1", timeout=UI_TIMEOUT)  # the reply, not the bot's answers
    w.open()
    expect(w.bubble("agent", "Ana here: I found your order.")).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.badge).to_be_hidden()


def test_a_reply_read_in_another_tab_leaves_this_tabs_badge(page: Page, shop: Shop):
    """Two tabs of the shop: the closed one counts an agent's reply, then the visitor reads
    it in the other tab. The first tab's badge goes: they have seen it."""
    page.clock.install()
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()
    w.ask_about_returns()
    w.close_button.click()
    _agent_reply(shop, "Ana here: your refund is on its way.")
    with page.expect_response(_is_poll, timeout=UI_TIMEOUT):
        page.clock.fast_forward(31_000)
    expect(w.badge).to_have_text("1", timeout=UI_TIMEOUT)

    other = page.context.new_page()
    w2 = Widget(other)
    other.goto(shop.url)
    w2.open_and_wait_for_init()
    expect(w2.bubble("agent", "Ana here")).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.badge).to_be_hidden(timeout=UI_TIMEOUT)
    expect(w.launcher).to_have_attribute("aria-label", "Open chat")


# --- host pages that are not plain pages -------------------------------------------------


def test_a_nonce_only_script_policy_still_runs_the_widget(page: Page, make_shop):
    shop = make_shop(template="csp.html")
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()
    w.ask_about_returns()


def test_a_single_page_site_replacing_its_body_keeps_the_widget(page: Page, shop: Shop):
    """Turbo or PJAX swap <body> on navigation: the widget goes into the new one."""
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()
    w.ask_about_returns()
    w.close_button.click()
    page.evaluate(
        """() => {
            const body = document.createElement('body')
            body.innerHTML = '<main><h1>Another page of the shop</h1></main>'
            document.documentElement.replaceChild(body, document.body)
        }"""
    )
    expect(page.get_by_role("heading", name="Another page of the shop")).to_be_visible()
    expect(w.launcher).to_be_visible(timeout=UI_TIMEOUT)
    w.open()
    expect(w.bubble("bot", RETURNS_ANSWER)).to_be_visible()  # the same conversation, still shown


# --- mobile ------------------------------------------------------------------------------


def test_a_greetings_buttons_stay_under_the_answer_that_followed_it(page: Page, shop: Shop):
    """A first message that asks something gets the greeting and the answer: the greeting's
    "pick a topic" buttons are still offered."""
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()
    w.send("Hi, how long does shipping take?")
    expect(w.bubble("bot", GREETING)).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.bubble("bot", SHIPPING_ANSWER)).to_be_visible(timeout=UI_TIMEOUT)
    w.expect_settled()
    expect(w.quick_replies).to_have_text(["Shipping times", "Returns"])
    w.send("thanks")  # the visitor moved on: the greeting's buttons go
    w.expect_settled()
    expect(w.quick_replies.filter(has_text="Shipping times")).to_have_count(0)


def test_mobile_panel_fills_the_screen_and_the_composer_works(
    new_context, shop: Shop, screenshot_dir: Path | None
):
    context = new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    w = Widget(page)
    page.goto(shop.url)
    expect(w.launcher).to_be_visible(timeout=UI_TIMEOUT)
    w.launcher.tap()
    expect(w.panel).to_be_visible(timeout=UI_TIMEOUT)

    box = w.panel.bounding_box()
    assert box is not None
    assert (round(box["x"]), round(box["y"])) == (0, 0), box
    assert (round(box["width"]), round(box["height"])) == (390, 844), box
    expect(w.launcher).to_be_hidden()  # the fullscreen panel has its own close button
    expect(w.composer).to_be_in_viewport(ratio=1)
    expect(w.send_button).to_be_in_viewport(ratio=1)
    expect(w.close_button).to_be_in_viewport(ratio=1)

    w.composer.tap()
    w.composer.fill("How long does shipping take?")
    w.send_button.tap()
    expect(w.bubble("visitor", "How long does shipping take?")).to_be_in_viewport()
    expect(w.bubble("bot", SHIPPING_ANSWER)).to_be_visible(timeout=UI_TIMEOUT)
    w.expect_settled()
    expect(w.bubble("bot", SHIPPING_ANSWER)).to_be_in_viewport()
    _shoot(page, screenshot_dir, "mobile")

    w.close_button.tap()
    expect(w.panel).to_be_hidden()
    expect(w.launcher).to_be_visible()
    assert _inbound_texts(shop) == ["How long does shipping take?"]


# --- privacy and hostile hosts -----------------------------------------------------------


def test_consent_gating_writes_nothing_before_consent(page: Page, make_shop):
    shop = make_shop(require_consent=True)
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()
    w.ask_about_returns()

    def storage() -> dict:
        return page.evaluate(
            """() => ({
                local: Object.keys(localStorage),
                session: Object.keys(sessionStorage),
                cookie: document.cookie,
            })"""
        )

    assert storage() == {"local": [], "session": [], "cookie": ""}
    assert page.context.cookies() == []  # none on the API origin either

    page.evaluate("ReplyBase.consent(true)")
    assert storage() == {"local": [shop.storage_key], "session": [], "cookie": ""}
    saved = stored_session(page, shop)
    conversation = shop.conversation()
    assert saved["consent"] is True
    assert saved["conversation_id"] == conversation.pk
    assert saved["visitor_id"] == conversation.external_session_id
    assert saved["session_token"]
    assert page.context.cookies() == []


# Page-wide rules from resets and themes. Only inherited properties and the host element
# itself are reachable from outside a shadow root, so that is where they must not land.
CSS_RESET = """
    * { all: unset; }
    button { display: none !important; }
    textarea, input { visibility: hidden !important; }
    body { font-size: 4px; line-height: 0; color: transparent; }
"""
HIDE_DIVS = "    div { display: none; }"


@pytest.mark.parametrize(
    "css",
    [
        pytest.param(CSS_RESET, id="reset"),
        pytest.param(CSS_RESET + HIDE_DIVS, id="reset-and-hidden-divs"),
    ],
)
def test_aggressive_host_css_does_not_break_the_widget(page: Page, make_shop, css: str):
    shop = make_shop(template="hostile.html", page_values={"css": css})
    w = Widget(page)
    page.goto(shop.url)

    # The loader draws the launcher in the same task that attaches the host element.
    expect(w.host).to_be_attached(timeout=UI_TIMEOUT)
    expect(w.launcher).to_be_visible(timeout=2_000)
    launcher = w.launcher.bounding_box()
    assert launcher["width"] >= 44 and launcher["height"] >= 44, launcher
    w.open_and_wait_for_init()
    expect(w.composer).to_be_visible()
    expect(w.send_button).to_be_visible()
    panel = w.panel.bounding_box()
    assert panel["width"] >= 300 and panel["height"] >= 300, panel

    w.send("How do I return an item?")
    expect(w.bubble("visitor", "How do I return an item?")).to_be_visible()
    expect(w.bubble("bot", RETURNS_ANSWER)).to_be_visible(timeout=UI_TIMEOUT)
    w.expect_settled()
    style = w.bubble("bot", RETURNS_ANSWER).evaluate(
        "el => [getComputedStyle(el).fontSize, getComputedStyle(el).color]"
    )
    assert style == ["14px", "rgb(17, 17, 17)"]  # the host's 4px transparent text stays out
    assert _inbound_texts(shop) == ["How do I return an item?"]


XSS = "<img src=x onerror=alert(1)>"
AGENT_XSS = (
    "<script>alert(2)</script><img src=x onerror=alert(3)> "
    "[click](javascript:alert(4)) see https://example.com/help"
)


def test_markup_in_messages_renders_as_text(page: Page, shop: Shop):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()

    w.send(XSS)
    expect(w.bubble("visitor", XSS)).to_be_visible()
    expect(w.bubble("bot", shop.site.bot.fallback_text)).to_be_visible(timeout=UI_TIMEOUT)
    w.expect_settled()
    assert _inbound_texts(shop) == [XSS]  # stored as typed, not escaped twice

    # An agent reply with markup arrives with the history after a reload.
    conversation = shop.conversation()
    Message.objects.create(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        direction=Direction.OUTBOUND,
        sender_type=SenderType.AGENT,
        text=AGENT_XSS,
    )
    page.reload()
    w.open_and_wait_for_init()
    expect(w.bubble("agent", "see https://example.com/help")).to_be_visible(timeout=UI_TIMEOUT)
    agent = w.bubble("agent", "<script>alert(2)</script>")
    expect(agent).to_contain_text("<img src=x onerror=alert(3)> [click](javascript:alert(4))")
    expect(w.bubble("visitor", XSS)).to_be_visible()

    links = agent.locator("a")
    expect(links).to_have_count(1)  # only the https URL became a link
    expect(links).to_have_attribute("href", "https://example.com/help")
    expect(links).to_have_attribute("rel", "noopener noreferrer")
    for tag in ("img", "script", "iframe", "svg image"):
        expect(page.locator(f"#replybase-widget .log {tag}")).to_have_count(0)
    assert page.evaluate("document.images.length") == 0
    assert dialogs == []


def test_disallowed_origin_does_not_start_and_is_counted(page: Page, make_shop, host_pages):
    shop = make_shop(allowed_domains=["shop.example.com"])
    page.goto(shop.url)

    denied = eventually(
        lambda: WebChatEvent.objects.filter(site=shop.site, type=EventType.ORIGIN_DENIED).first(),
        page=page,
        what="an origin_denied event",
    )
    assert denied.tenant_id == shop.site.tenant_id
    assert denied.payload["origin"] == host_pages.origin
    assert denied.payload["route"] == "config"
    # The loader is there but the widget never draws anything.
    page.wait_for_function("window.ReplyBase && window.ReplyBase._rb === 1")
    expect(page.locator("#replybase-widget")).to_have_count(0)
    expect(page.locator("button.launcher")).to_have_count(0)
    assert not WebChatSession.objects.filter(site=shop.site).exists()


def test_disallowed_origin_gives_up_after_one_refusal(page: Page, make_shop):
    shop = make_shop(allowed_domains=["shop.example.com"])
    configs: list[str] = []
    warnings: list[str] = []
    page.on("request", lambda r: "/api/webchat/v1/config" in r.url and configs.append(r.url))
    page.on("console", lambda m: m.text.startswith("ReplyBase:") and warnings.append(m.text))
    # The host page listens before the loader runs (the documented stub queue).
    page.add_init_script(
        "window.ReplyBase = {q: [['on', 'error', (e) => "
        "(window.rbErrors = (window.rbErrors || []).concat(e.code))]]}"
    )
    page.goto(shop.url)

    # Until the loader reports why it stays off, or asks again (a retry arrives within 1 s).
    for _ in range(200):
        if warnings or len(configs) > 1:
            break
        page.wait_for_timeout(50)
    assert warnings == ["ReplyBase: origin_not_allowed"]
    assert page.evaluate("window.rbErrors") == ["origin_not_allowed"]
    assert len(configs) == 1
    assert WebChatEvent.objects.filter(site=shop.site, type=EventType.ORIGIN_DENIED).count() == 1


# --- failures: the visitor is never left with a spinner ----------------------------------


def test_ai_timeout_shows_the_fallback(page: Page, shop: Shop, llm_standin):
    bot = shop.site.bot
    bot.engine = Engine.OPENAI
    bot.llm_base_url = llm_standin.base_url
    bot.llm_model = "gpt-4o-mini"
    bot.set_llm_api_key(llm_standin.api_key)
    bot.ai_timeout_seconds = 2
    bot.save()
    llm_standin.set_fault("hang", route="/v1/chat/completions")

    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()
    w.send("Do you price match other shops?")
    expect(w.bubble("visitor", "Do you price match")).to_be_visible()
    expect(w.bubble("bot", bot.fallback_text)).to_be_visible(timeout=UI_TIMEOUT)
    w.expect_settled()
    expect(w.quick_replies).to_have_text(["Talk to a person"])  # the handoff offer

    assert len(llm_standin.requests_to("/v1/chat/completions")) == 1
    fallback = Message.objects.filter(tenant_id=bot.tenant_id).order_by("id").last()
    assert fallback.sender_type == SenderType.BOT
    assert fallback.text == bot.fallback_text
    assert fallback.metadata["ai_outcome"] == "timeout"
    assert shop.conversation().pending_reply_since is None


def test_api_unreachable_shows_an_error_and_recovers(page: Page, shop: Shop):
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()

    aborted: list[str] = []

    def down(route) -> None:
        aborted.append(route.request.url)
        route.abort("connectionrefused")

    page.route(API_ROUTES, down)
    w.send("How long does shipping take?")
    expect(w.bubble("visitor", "How long does shipping take?")).to_have_attribute(
        "data-s", "sending"
    )
    expect(w.alert).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.alert).to_contain_text("Connection problem")
    expect(w.typing).to_be_hidden()
    assert any("/messages" in url for url in aborted)
    assert _inbound_texts(shop) == []

    page.unroute(API_ROUTES, down)
    expect(w.bubble("bot", SHIPPING_ANSWER)).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.alert).to_be_hidden()
    w.expect_settled()
    # Retries reuse the client_message_id: the message is stored once.
    assert _inbound_texts(shop) == ["How long does shipping take?"]


def test_a_message_still_being_sent_when_the_visitor_reloads_is_not_lost(page: Page, shop: Shop):
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()
    page.route(API_ROUTES, lambda route: route.abort("connectionrefused"))
    w.send("How long does shipping take?")
    expect(w.alert).to_contain_text("Connection problem", timeout=UI_TIMEOUT)  # it retries

    page.unroute(API_ROUTES)
    page.reload()  # the connection is back, and so is the visitor, a page later
    # The pending message goes at once, so its init may be over before the panel opens:
    # open it without waiting for an init of its own.
    expect(w.launcher).to_be_visible(timeout=UI_TIMEOUT)
    w.launcher.click()
    expect(w.panel).to_be_visible()
    expect(w.bubble("visitor", "How long does shipping take?")).to_be_visible(timeout=UI_TIMEOUT)
    eventually(
        lambda: _inbound_texts(shop) == ["How long does shipping take?"],
        page=page,
        what="the message to be stored",
    )


def test_server_error_shows_readable_copy_and_recovers(page: Page, shop: Shop, host_pages):
    w = Widget(page)
    page.goto(shop.url)
    w.open_and_wait_for_init()

    def server_error(route) -> None:
        route.fulfill(
            status=500,
            headers={"Access-Control-Allow-Origin": host_pages.origin},
            content_type="text/html",
            body="<h1>Server Error (500)</h1>",
        )

    page.route("**/api/webchat/v1/messages*", server_error)
    w.send("How long does shipping take?")
    expect(w.alert).to_be_visible(timeout=UI_TIMEOUT)
    assert "http_" not in w.alert.inner_text()
    expect(w.bubble("visitor", "How long does shipping take?")).to_have_attribute(
        "data-s", "sending"
    )

    page.unroute("**/api/webchat/v1/messages*", server_error)
    expect(w.bubble("bot", SHIPPING_ANSWER)).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.alert).to_be_hidden()
    w.expect_settled()
    assert _inbound_texts(shop) == ["How long does shipping take?"]


# The host page records the widget's `error` events and every state a bubble was drawn in
# (data-s: sending, failed), through a MutationObserver on the widget's shadow root. Once
# armed (`rbBreakNext = true`), a patched insertBefore throws on the next bot bubble: a host
# page script breaking a DOM method the widget renders with.
BROKEN_RENDER = """
    window.rbErrors = []
    window.rbStates = []
    window.rbBreakNext = false
    const insert = Node.prototype.insertBefore
    Node.prototype.insertBefore = function (node, ref) {
        if (window.rbBreakNext && node.classList && node.classList.contains("bot")) {
            window.rbBreakNext = false
            throw new Error("host page bug")
        }
        return insert.call(this, node, ref)
    }
    const record = (records) => {
        for (const r of records) window.rbStates.push(r.oldValue, r.target.getAttribute("data-s"))
    }
    window.ReplyBase = {q: [
        ["on", "error", (e) => window.rbErrors.push(e.code)],
        ["on", "ready", () => new MutationObserver(record).observe(
            document.getElementById("replybase-widget").shadowRoot,
            {subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ["data-s"]},
        )],
    ]}
"""


def test_a_page_error_after_the_server_took_the_message_is_not_a_failed_send(
    page: Page, shop: Shop
):
    # Rendering the first answer's replies throws (after the server stored the message and the
    # widget acknowledged it). A host page listener that throws cannot stand in: the loader
    # catches what `ReplyBase.on` listeners throw.
    page.add_init_script(BROKEN_RENDER)
    w = Widget(page)
    page.goto(shop.url)
    with page.expect_response(_is_good_poll, timeout=UI_TIMEOUT):  # next poll: 7 s later
        w.open_and_wait_for_init()
    posted: list[str] = []
    page.on(
        "request",
        lambda r: (
            "/api/webchat/v1/messages" in r.url and r.method == "POST" and posted.append(r.url)
        ),
    )

    page.evaluate("window.rbBreakNext = true")
    w.send("How long does shipping take?")
    eventually(lambda: page.evaluate("window.rbErrors.length"), page=page, what="the error")
    assert page.evaluate("window.rbBreakNext") is False  # it threw, in the send's render
    assert "failed" not in page.evaluate("window.rbStates")
    w.send("How do I return an item?")  # the outbox still sends

    expect(w.bubble("bot", SHIPPING_ANSWER)).to_be_visible(timeout=UI_TIMEOUT)
    expect(w.bubble("bot", RETURNS_ANSWER)).to_be_visible(timeout=UI_TIMEOUT)
    w.expect_settled()
    expect(w.alert).to_be_hidden()
    expect(w.page.locator("#replybase-widget .m.visitor")).to_have_text(
        ["You: How long does shipping take?", "You: How do I return an item?"]
    )
    assert "failed" not in page.evaluate("window.rbStates")
    assert page.evaluate("window.rbErrors") == ["client_error"]
    assert len(posted) == 2  # each message posted once: the first was not retried
    assert _inbound_texts(shop) == ["How long does shipping take?", "How do I return an item?"]

    _closed_and_flushed(page, w, shop)
    eventually(lambda: _error_codes(shop) == ["client_error"], page=page, what="one error event")


def test_the_demo_page_fits_a_phone(new_context, live_server, settings):
    """The demo page's snippet wraps: no sideways scrolling on a 390 px screen."""
    from tests.factories import TenantFactory
    from tests.factories.webchat import WebChatSiteFactory

    settings.DEMO_MODE = True
    WebChatSiteFactory(tenant=TenantFactory(slug="demo"), allowed_domains=["localhost"])
    page = new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    page.goto(live_server.url + "/demo/")
    expect(page.get_by_role("heading", name="Northwind Outfitters")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the demo page is {width} px wide on a 390 px screen"


def test_right_to_left_text_reads_right_to_left(page: Page, shop: Shop):
    w = Widget(page)
    page.goto(shop.url)
    w.open()
    w.composer.fill("مرحبا، كم يستغرق الشحن؟")
    assert w.composer.evaluate("el => getComputedStyle(el).direction") == "rtl"
    w.send_button.click()
    visitor = w.bubble("visitor", "مرحبا")
    expect(visitor).to_be_visible(timeout=UI_TIMEOUT)
    assert visitor.evaluate("el => getComputedStyle(el).direction") == "rtl"
    w.expect_settled()
    # an English answer stays left to right
    [first_bot] = w.page.locator("#replybase-widget .m.bot").all()[-1:]
    assert first_bot.evaluate("el => getComputedStyle(el).direction") == "ltr"


def test_a_kill_switch_mid_chat_tells_the_visitor_instead_of_vanishing(page: Page, shop: Shop):
    from rollout.services import kill_switch_set

    w = Widget(page)
    page.goto(shop.url)
    page.evaluate("window.__disabled = 0; ReplyBase.on('disabled', () => window.__disabled++)")
    w.open_and_wait_for_init()
    w.ask_about_returns()
    kill_switch_set(actor=None, reason="e2e: bad deploy", enabled=False)

    w.send("And how long does shipping take?")
    expect(w.alert).to_have_text(
        "The chat is not available right now. Please try again later.", timeout=UI_TIMEOUT
    )
    expect(w.panel).to_be_visible()  # the conversation stays readable...
    expect(w.bubble("bot", RETURNS_ANSWER)).to_be_visible()
    expect(w.composer).to_be_disabled()  # ...but nothing more can be sent
    assert page.evaluate("window.__disabled") == 1
    w.close_button.click()
    expect(w.host).to_have_count(0)  # closed, the widget is gone from the page
