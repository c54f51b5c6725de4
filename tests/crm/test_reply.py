"""Staff answer webchat visitors from the dashboard's conversation page (no Chatwoot needed)."""

import pytest
from django.test import Client
from django.urls import reverse

from crm.models import Conversation, Message
from tests.factories import ConversationFactory
from tests.factories.support import ChatwootConnectionFactory, ChatwootConversationLinkFactory
from tests.widget_client import WidgetClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def visitor(client, site):
    widget = WidgetClient(client, site.site_key)
    widget.init()
    widget.send("talk to a person please")
    return widget


def reply(staff_client, conversation, text):
    return staff_client.post(
        reverse("crm:conversation_reply", args=[conversation.pk]), {"text": text}
    )


def staff(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def test_an_agents_reply_reaches_the_visitor(visitor, agent):
    conversation = Conversation.objects.get()
    page = staff(agent).get(reverse("crm:conversation", args=[conversation.pk]))
    assert 'id="reply"' in page.content.decode()
    response = reply(staff(agent), conversation, "  Hi, Sam here.\u202e How can I help?  ")
    assert response.status_code == 302
    stored = Message.objects.get(conversation=conversation, sender_type="agent")
    assert stored.text == "Hi, Sam here. How can I help?"
    assert stored.direction == "outbound" and stored.metadata["staff_user_id"] == agent.pk
    conversation.refresh_from_db()
    assert conversation.last_message_at == stored.created_at
    texts = [(m["sender"], m["text"]) for m in visitor.poll().json()["messages"]]
    assert ("agent", "Hi, Sam here. How can I help?") in texts


def test_bad_replies_are_form_errors_and_keep_the_text(visitor, agent):
    conversation = Conversation.objects.get()
    for text, error in [
        ("   ", "Write a reply first"),
        ("\u202e\u0007", "Write a reply first"),  # nothing left once control characters go
        ("bad \x00 byte", "Null characters are not allowed"),
        ("x" * 4001, "at most 4000"),
    ]:
        response = reply(staff(agent), conversation, text)
        assert response.status_code == 400
        assert error in response.content.decode()
        assert response.context["reply_form"]["text"].value() == text
    assert not Message.objects.filter(sender_type="agent").exists()


def test_viewers_and_other_tenants_cannot_reply(visitor, viewer, other_tenant):
    from tests.factories import MembershipFactory

    conversation = Conversation.objects.get()
    assert reply(staff(viewer), conversation, "hello").status_code == 403
    outsider = MembershipFactory(tenant=other_tenant, role="owner").user
    assert reply(staff(outsider), conversation, "hello").status_code == 404
    assert not Message.objects.filter(sender_type="agent").exists()


def test_a_conversation_in_chatwoot_is_answered_there(visitor, agent, tenant):
    conversation = Conversation.objects.get()
    ChatwootConversationLinkFactory(
        connection=ChatwootConnectionFactory(tenant=tenant), conversation=conversation
    )
    page = staff(agent).get(reverse("crm:conversation", args=[conversation.pk]))
    assert "reply there" in page.content.decode() and "Send reply" not in page.content.decode()
    response = reply(staff(agent), conversation, "hello")
    assert response.status_code == 400 and "reply there" in response.content.decode()
    assert not Message.objects.filter(sender_type="agent").exists()


def test_other_channels_are_not_answered_from_here(agent, tenant):
    conversation = ConversationFactory(tenant=tenant, channel="telegram", channel_id="tg-1")
    response = reply(staff(agent), conversation, "hello")
    assert response.status_code == 400
    assert "Only webchat visitors" in response.content.decode()
