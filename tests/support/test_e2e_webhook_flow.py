"""Runbook group 7: end-to-end webhook flow (2 tests). The stand-in Chatwoot sends its real
webhooks to a live server from its own thread, exactly as Chatwoot's job queue does."""

import time

import httpx
import pytest
from django.test import Client

from support.models import ApprovalItem, ApprovalStatus, ChatwootConversationLink
from tests.factories import KnowledgeArticleFactory, MembershipFactory
from tests.factories.support import API_TOKEN, WEBHOOK_SECRET, ChatwootConnectionFactory
from tests.support.conftest import ARTICLES, SHIPPING_QUESTION, WEBHOOK_PATH, deliveries

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_until(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


@pytest.fixture
def wired(live_server, tenant, bot, chatwoot_standin):
    for title, body, tags in ARTICLES:
        KnowledgeArticleFactory(tenant=tenant, title=title, body=body, tags=tags)
    connection = ChatwootConnectionFactory(tenant=tenant, base_url=chatwoot_standin.url, bot=bot)
    chatwoot_standin.webhook_url = live_server.url + WEBHOOK_PATH.format(
        token=connection.webhook_token
    )
    chatwoot_standin.webhook_secret = WEBHOOK_SECRET
    return connection


def api(standin, path: str, body: dict) -> httpx.Response:
    return httpx.post(
        f"{standin.url}/api/v1/accounts/1{path}", json=body, headers={"api_access_token": API_TOKEN}
    )


def test_customer_message_to_approved_reply(wired, chatwoot_standin, tenant):
    conv = chatwoot_standin.seed_conversation(contact_name="Jane Customer")
    started = time.monotonic()
    asked = api(
        chatwoot_standin,
        f"/conversations/{conv['id']}/messages",
        {"content": SHIPPING_QUESTION, "message_type": "incoming"},
    )
    assert asked.status_code == 200

    # Webhook → retrieval → draft → private note, well within the 3 s processing target.
    notes = chatwoot_standin.wait_for_requests(
        "POST /api/v1/accounts/*/conversations/*/messages", count=2, timeout=3
    )
    assert time.monotonic() - started < 3
    assert notes[-1].json["private"] is True and "$6.95" in notes[-1].json["content"]
    assert wait_until(
        lambda: ApprovalItem.objects.filter(
            connection=wired, private_note_id__isnull=False
        ).exists()
    )
    item = ApprovalItem.objects.get(connection=wired)
    assert item.status == ApprovalStatus.PENDING

    # The note's own webhook came back and was ignored.
    wait_until(lambda: len(chatwoot_standin.deliveries) >= 2)
    assert wait_until(lambda: "ignored:private_note" in {d.outcome for d in deliveries(wired)})

    # An agent approves it in the dashboard: the customer gets the reply in Chatwoot.
    agent = MembershipFactory(tenant=tenant, role="agent").user
    browser = Client()
    browser.force_login(agent)
    assert browser.post(f"/support/approvals/{item.pk}/approve/").status_code == 302
    item.refresh_from_db()
    assert item.status == ApprovalStatus.SENT
    public = [
        m
        for m in chatwoot_standin.messages(conv["id"])
        if m["message_type"] == "outgoing" and not m["private"]
    ]
    assert [m["content"] for m in public] == [item.draft_text]
    # …and the echo of our own reply is not taken for an agent's.
    assert wait_until(lambda: "ignored:own_message" in {d.outcome for d in deliveries(wired)})
    assert ApprovalItem.objects.count() == 1
    assert all(d["status"] == 200 for d in chatwoot_standin.deliveries)
    link = ChatwootConversationLink.objects.get(chatwoot_conversation_id=conv["id"])
    assert link.first_response_at is not None and link.breached_at is None


def test_resolving_in_chatwoot_clears_the_queue(wired, chatwoot_standin):
    conv = chatwoot_standin.seed_conversation()
    api(
        chatwoot_standin,
        f"/conversations/{conv['id']}/messages",
        {"content": "Do gift cards expire?", "message_type": "incoming"},
    )
    assert wait_until(lambda: ApprovalItem.objects.filter(status=ApprovalStatus.PENDING).exists())
    resolved = api(
        chatwoot_standin, f"/conversations/{conv['id']}/toggle_status", {"status": "resolved"}
    )
    assert resolved.json()["payload"]["current_status"] == "resolved"
    assert wait_until(
        lambda: ApprovalItem.objects.filter(status=ApprovalStatus.SUPERSEDED).exists()
    )
    link = ChatwootConversationLink.objects.get(chatwoot_conversation_id=conv["id"])
    assert link.status == "resolved"
    # A customer writing again reopens it (Chatwoot sends the status change too).
    api(
        chatwoot_standin,
        f"/conversations/{conv['id']}/messages",
        {"content": "One more thing: do gift cards expire?", "message_type": "incoming"},
    )
    assert wait_until(lambda: ApprovalItem.objects.filter(status=ApprovalStatus.PENDING).exists())
    link.refresh_from_db()
    assert link.status == "open"
