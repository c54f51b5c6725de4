"""Real-browser fixtures: Debian Chromium, the app on pytest-django's live server, and host
pages served from a second local origin so CORS and the Origin checks run for real.

- API and widget bundles: `live_server` (http://localhost:<port>). pytest-django wraps it in
  `django.contrib.staticfiles.handlers.StaticFilesHandler` because staticfiles is installed,
  which serves /static/ straight from the finders (`static/webchat/*.js`) even with
  DEBUG=False; no collectstatic and no settings tweak needed.
- Host pages: `host_pages`, a ThreadingHTTPServer on http://127.0.0.1:<another port>. The
  browser treats it as another origin (other host and port), so every widget call is a
  cross-origin fetch with an Origin header the API checks against `allowed_domains`.

Each xdist worker has its own live server, test database, Redis key prefix and host-page
server, so the tests run in parallel unchanged.
"""

import os

# Playwright's sync API runs an event loop in the test thread; Django's ORM refuses to run
# in such a thread unless told it is safe (it is: the loop never runs our ORM calls).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template

import pytest
from django.urls import reverse
from playwright.sync_api import BrowserContext, Page, Request, expect
from playwright.sync_api import Error as PlaywrightError

from bots.models import FlowAction, FlowTrigger
from crm.models import Conversation
from tests.factories import BotFactory, FlowRuleFactory, KnowledgeArticleFactory, TenantFactory
from tests.factories.core import PASSWORD
from tests.factories.webchat import WebChatSiteFactory
from webchat.models import WebChatSite

PAGES = Path(__file__).parent / "pages"
API_PATH = "/api/webchat/"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SITE_TITLE = "Northwind help"
WELCOME = "Hi there! Questions about an order, returns or gear? Ask away."
GREETING = "Hi! I'm the Northwind helper. Pick a topic or ask me anything:"
QUICK_REPLIES = [
    {"label": "Shipping times", "value": "How long does shipping take?"},
    {"label": "Returns", "value": "How do I return an item?"},
]
ARTICLES = {
    "Returns and refunds": "You can return unused items within 30 days of delivery for a full "
    "refund. Start a return from Account, then Orders.",
    "Shipping times": "Orders ship within 2 business days from our Portland warehouse. "
    "Standard delivery takes 3 to 5 business days.",
    "Warranty": "All tents and backpacks carry a lifetime warranty against manufacturing defects.",
}
RETURNS_ANSWER = ARTICLES["Returns and refunds"]
SHIPPING_ANSWER = ARTICLES["Shipping times"]
UI_TIMEOUT = 10_000  # ms: a dashboard page or an htmx swap


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """`playwright install` cannot download browsers here: drive Debian's Chromium."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def new_context(
    new_context: Callable[..., BrowserContext],
) -> Iterator[Callable[..., BrowserContext]]:
    """pytest-playwright's `new_context` (behind `context` and `page`), with a quiet ending.

    A widget left running keeps calling the API (polls, telemetry, a keepalive flush on
    pagehide). A request still inside the live server when `transactional_db` truncates the
    tables deadlocks with the TRUNCATE (an INSERT's foreign-key check wants a lock the
    TRUNCATE holds) or fails on rows already gone. So before the contexts close: cut the
    widget's fetch in each page (a keepalive request sent while a page unloads can slip past
    Playwright's routing), refuse API calls at the context too, let the requests in flight
    finish, and only then leave the pages.
    """
    made: list[tuple[BrowserContext, set[Request]]] = []

    def make(**kwargs: object) -> BrowserContext:
        context = new_context(**kwargs)
        in_flight: set[Request] = set()
        context.on("request", lambda r: API_PATH in r.url and in_flight.add(r))
        context.on("requestfinished", lambda r: in_flight.discard(r))
        context.on("requestfailed", lambda r: in_flight.discard(r))
        made.append((context, in_flight))
        return context

    yield make
    for context, in_flight in made:
        _quiesce(context, in_flight)


def _quiesce(context: BrowserContext, in_flight: set[Request]) -> None:
    try:
        context.route(f"**{API_PATH}**", lambda route: route.abort())
        pages = context.pages
        for page in pages:
            page.evaluate("() => { window.fetch = () => Promise.reject(new TypeError('ended')) }")
        deadline = time.monotonic() + 10
        while in_flight and pages and time.monotonic() < deadline:
            pages[0].wait_for_timeout(25)  # lets Playwright deliver the request events
        for page in pages:
            page.goto("about:blank")  # its pagehide flush now fails in the page
    except PlaywrightError:
        pass  # the test closed the context itself


# --- host pages on a second origin ------------------------------------------------------


class _HostHandler(BaseHTTPRequestHandler):
    server: "_HostServer"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/favicon.ico":  # keep the browser console free of unrelated 404s
            self.send_response(204)
            self.end_headers()
            return
        html = self.server.pages.get(path)
        body = (html or "Not found").encode()
        self.send_response(200 if html else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8" if html else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _HostServer(ThreadingHTTPServer):
    daemon_threads = True
    pages: dict[str, str]


@dataclass
class HostPages:
    """Serves HTML pages at http://127.0.0.1:<port>/<name>."""

    server: _HostServer

    @property
    def origin(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def domain(self) -> str:
        """The origin as an `allowed_domains` rule (`127.0.0.1:<port>`)."""
        return self.origin.removeprefix("http://")

    def add(self, path: str, html: str) -> str:
        self.server.pages[path] = html
        return self.origin + path

    def embed(
        self, site: WebChatSite, *, loader_src: str, template: str = "shop.html", **values: str
    ) -> str:
        """A host page that embeds the widget the way a customer does; returns its URL.

        `values` fill the template's other `$placeholders` (e.g. `css` in hostile.html).
        """
        html = Template((PAGES / template).read_text()).substitute(
            loader_src=loader_src, site_key=site.site_key, **values
        )
        return self.add(f"/{site.site_key}/{template}", html)


@pytest.fixture(scope="session")
def host_pages() -> Iterator[HostPages]:
    server = _HostServer(("127.0.0.1", 0), _HostHandler)
    server.pages = {}
    thread = threading.Thread(target=server.serve_forever, name="e2e-host-pages", daemon=True)
    thread.start()
    try:
        yield HostPages(server)
    finally:
        server.shutdown()
        server.server_close()


# --- a tenant with a bot, a knowledge base, flows and a site ------------------------------


@dataclass
class Shop:
    site: WebChatSite
    url: str  # the host page embedding the widget
    loader_src: str

    @property
    def storage_key(self) -> str:
        return f"replybase:{self.site.site_key}"

    def conversation(self) -> Conversation:
        """The one web conversation the visitor has with this site's tenant."""
        return Conversation.objects.get(tenant_id=self.site.tenant_id)


@pytest.fixture
def make_shop(transactional_db, live_server, host_pages: HostPages) -> Callable[..., Shop]:
    """Build the tenant and its site (`site_fields` override the site's settings).

    Committed data: the live server answers from another thread with its own connection.
    """

    def make(
        *, template: str = "shop.html", page_values: dict | None = None, **site_fields: object
    ) -> Shop:
        tenant = TenantFactory(name="Northwind Outfitters")
        bot = BotFactory(tenant=tenant, name="Northwind helper")
        for title, body in ARTICLES.items():
            KnowledgeArticleFactory(tenant=tenant, title=title, body=body)
        FlowRuleFactory(
            bot=bot,
            name="Welcome",
            position=0,
            trigger=FlowTrigger.GREETING,
            pattern="",
            action=FlowAction.QUICK_REPLIES,
            reply_text=GREETING,
            quick_replies=QUICK_REPLIES,
        )
        site = WebChatSiteFactory(
            tenant=tenant,
            bot=bot,
            name="Northwind store",
            title=SITE_TITLE,
            welcome_message=WELCOME,
            color="#23402f",
            **{"allowed_domains": [host_pages.domain], **site_fields},
        )
        loader_src = f"{live_server.url}/static/webchat/loader.js"
        url = host_pages.embed(
            site, loader_src=loader_src, template=template, **(page_values or {})
        )
        return Shop(site=site, url=url, loader_src=loader_src)

    return make


@pytest.fixture
def shop(make_shop: Callable[..., Shop]) -> Shop:
    return make_shop()


# --- helpers ------------------------------------------------------------------------------


def eventually(
    check: Callable[[], object], *, page: Page, timeout: float = 10.0, what: str = ""
) -> object:
    """Poll a database condition the browser causes asynchronously (e.g. telemetry).

    Waits with `page.wait_for_timeout`, not `time.sleep`: Playwright's sync API delivers
    events and runs route handlers only while the test is inside a Playwright call, so a
    sleeping test would stall every request a `page.route` handler must answer.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or check}")
        page.wait_for_timeout(100)


def log_in(page: Page, base_url: str, email: str) -> None:
    """Sign a staff member in through the login form (every factory user has PASSWORD)."""
    page.goto(base_url + reverse("login"))
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit], main input[type=submit]")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible(timeout=UI_TIMEOUT)


def stored_session(page: Page, shop: Shop) -> dict | None:
    raw = page.evaluate("key => localStorage.getItem(key)", shop.storage_key)
    return json.loads(raw) if raw else None


@pytest.fixture
def screenshot_dir() -> Path | None:
    """Set E2E_SCREENSHOT_DIR=/tmp to save panel screenshots for a human look."""
    value = os.environ.get("E2E_SCREENSHOT_DIR")
    return Path(value) if value else None
