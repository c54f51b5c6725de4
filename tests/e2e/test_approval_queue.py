"""The approval queue in real Chromium: an agent works the first page with htmx (each
decision swaps its row in place) and then follows Next, which starts right after the
page's last row, so no waiting draft is skipped."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from support.models import ApprovalItem, ApprovalStatus
from tenants.models import Role
from tests.e2e.conftest import UI_TIMEOUT, log_in
from tests.factories import MembershipFactory, TenantFactory
from tests.factories.support import (
    ApprovalItemFactory,
    ChatwootConnectionFactory,
    ChatwootConversationLinkFactory,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def agent_page(transactional_db, new_context, live_server) -> Page:
    return new_context(base_url=live_server.url).new_page()


def test_deciding_the_first_page_skips_nothing_on_the_next(
    agent_page: Page, live_server, chatwoot_standin, monkeypatch
):
    from support import views

    tenant = TenantFactory(name="Northwind Outfitters")
    agent = MembershipFactory(tenant=tenant, role=Role.AGENT).user
    connection = ChatwootConnectionFactory(tenant=tenant, base_url=chatwoot_standin.url)
    conv = chatwoot_standin.seed_conversation(contact_name="Jane Customer")
    link = ChatwootConversationLinkFactory(
        connection=connection, chatwoot_conversation_id=conv["id"]
    )
    now = timezone.now()
    items = [
        ApprovalItemFactory(link=link, due_at=now + timedelta(minutes=n + 1), customer_text=f"Q{n}")
        for n in range(5)
    ]
    monkeypatch.setattr(views, "QUEUE_PAGE_SIZE", 2)  # the live server runs in this process
    page = agent_page
    log_in(page, live_server.url, agent.email)
    page.goto(live_server.url + reverse("support:approvals"))
    first, second = (page.locator(f"#item-{item.pk}") for item in items[:2])
    expect(first).to_be_visible(timeout=UI_TIMEOUT)
    expect(page.locator(f"#item-{items[2].pk}")).to_have_count(0)

    first.get_by_role("button", name="Approve", exact=True).click()
    expect(first.get_by_role("status")).to_have_text(
        "Approved: the reply is being sent.", timeout=UI_TIMEOUT
    )
    second.locator("summary", has_text="Reject").click()
    second.get_by_label("Reason").fill("Wrong article")
    second.get_by_role("button", name="Reject").click()
    expect(second.get_by_role("status")).to_have_text("Draft rejected.", timeout=UI_TIMEOUT)
    statuses = dict(
        ApprovalItem.objects.filter(pk__in=[i.pk for i in items[:2]]).values_list("pk", "status")
    )
    assert statuses[items[0].pk] == ApprovalStatus.SENT
    assert statuses[items[1].pk] == ApprovalStatus.REJECTED

    page.get_by_role("link", name="Next").click()
    expect(page.locator(f"#item-{items[2].pk}")).to_be_visible(timeout=UI_TIMEOUT)
    expect(page.locator(f"#item-{items[3].pk}")).to_be_visible()
    expect(page.locator(f"#item-{items[4].pk}")).to_have_count(0)
    page.get_by_role("link", name="Next").click()
    expect(page.locator(f"#item-{items[4].pk}")).to_be_visible(timeout=UI_TIMEOUT)
    expect(page.get_by_role("link", name="Next")).to_have_count(0)
