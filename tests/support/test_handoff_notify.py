"""A handoff no Chatwoot inbox takes is emailed to the tenant's team, once."""

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend

from bots.services import conversation_status_set
from crm.models import Conversation, ConversationStatus
from support import notify
from support.tasks import notify_handoff
from tenants.models import Role
from tests.factories import MembershipFactory, UserFactory
from tests.factories.support import ChatwootConnectionFactory
from tests.factories.webchat import WebChatSiteFactory
from tests.widget_client import WidgetClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(tenant, other_tenant, owner, admin_user, agent, viewer):
    """Who answers visitors gets the email: not viewers, former staff or other tenants."""
    MembershipFactory(tenant=tenant, role=Role.AGENT, user=UserFactory(is_active=False))
    MembershipFactory(tenant=tenant, role=Role.AGENT, user=UserFactory(email=""))
    MembershipFactory(tenant=other_tenant, role=Role.OWNER)
    return sorted(user.email for user in (owner, admin_user, agent))


def _conversation(widget: WidgetClient) -> Conversation:
    return Conversation.objects.get(pk=widget.conversation_id)


def test_a_visitor_asking_for_a_person_is_emailed_to_each_of_the_team(widget_client, team):
    widget_client.init()
    widget_client.send("Where is my order 1234?")
    assert mail.outbox == []  # the bot is answering
    widget_client.send("I want to talk to a human please")
    conversation = _conversation(widget_client)
    assert conversation.status == ConversationStatus.HANDOFF
    assert sorted(email for m in mail.outbox for email in m.to) == team
    assert all(len(m.to) == 1 for m in mail.outbox)  # nobody sees the others' addresses
    email = mail.outbox[0]
    assert email.subject == "[Northwind] A visitor is waiting for a person"
    assert "The visitor asked to talk to a person." in email.body
    assert "> I want to talk to a human please" in email.body
    link = f"https://app.replybase.test/conversations/{conversation.pk}/"
    assert f"Reply here: {link}" in email.body
    # later messages of the handed-off conversation send nothing more
    widget_client.send("hello?")
    assert len(mail.outbox) == len(team)


def test_a_site_without_a_bot_emails_each_new_conversation(client, tenant, team):
    site = WebChatSiteFactory(tenant=tenant, bot=None)
    widget = WidgetClient(client, site.site_key)
    widget.init()
    widget.send("Do you deliver on Sundays? " + "x" * 600)
    assert len(mail.outbox) == len(team)
    body = mail.outbox[0].body
    assert "This website has no bot" in body
    excerpt = next(line for line in body.splitlines() if line.startswith("> "))
    assert len(excerpt) == 2 + notify.EXCERPT_CHARS and excerpt.endswith("…")


def test_no_email_when_chatwoot_takes_it_or_staff_handed_it_off(widget_client, tenant, team):
    widget_client.init()
    widget_client.send("hi")
    conversation_status_set(
        conversation=_conversation(widget_client), status=ConversationStatus.HANDOFF
    )
    assert mail.outbox == []
    ChatwootConnectionFactory(tenant=tenant)
    other = WidgetClient(widget_client.client, widget_client.site_key)
    other.init()
    other.send("a human please")
    assert _conversation(other).status == ConversationStatus.HANDOFF
    assert mail.outbox == []


def test_a_task_run_twice_sends_once(widget_client, team):
    widget_client.init()
    widget_client.send("I want to talk to a human please")
    assert len(mail.outbox) == len(team)
    assert notify.handoff_notify(conversation_id=widget_client.conversation_id) == 0
    assert notify.handoff_notify(conversation_id=0) == 0  # gone: nothing to say
    assert len(mail.outbox) == len(team)


class _Down(EmailBackend):
    def send_messages(self, messages):
        raise ConnectionRefusedError("the mail server is down")


def test_a_mail_failure_never_fails_the_visitors_request(widget_client, team, settings):
    settings.EMAIL_BACKEND = f"{__name__}._Down"
    widget_client.init()
    response = widget_client.send("I want to talk to a human please")
    assert response.status_code == 201
    assert _conversation(widget_client).status == ConversationStatus.HANDOFF
    # not marked as sent: a worker's retry (here: the next run) sends it
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notify_handoff.apply(kwargs={"conversation_id": widget_client.conversation_id}).get()
    assert len(mail.outbox) == len(team)


def test_a_tenant_name_with_a_line_break_still_gets_its_emails(widget_client, tenant, team):
    """The settings form keeps a line break inside a name; a header may not hold one."""
    tenant.name = "North\r\nwind"
    tenant.save(update_fields=["name"])
    widget_client.init()
    widget_client.send("I want to talk to a human please")
    assert len(mail.outbox) == len(team)
    assert mail.outbox[0].subject == "[North wind] A visitor is waiting for a person"


def test_a_flood_of_handoffs_is_emailed_up_to_the_hourly_budget(client, tenant, team, settings):
    settings.HANDOFF_EMAILS_PER_HOUR = 2
    site = WebChatSiteFactory(tenant=tenant, bot=None)  # every new conversation is a handoff
    for n in range(4):
        widget = WidgetClient(client, site.site_key)
        widget.init()
        widget.send(f"visitor {n} here")
    assert len(mail.outbox) == 2 * len(team)
    assert Conversation.objects.filter(status=ConversationStatus.HANDOFF).count() == 4


def test_a_failed_send_does_not_use_up_the_budget(widget_client, team, settings):
    settings.HANDOFF_EMAILS_PER_HOUR = 1
    settings.EMAIL_BACKEND = f"{__name__}._Down"
    widget_client.init()
    widget_client.send("I want to talk to a human please")  # the mail server is down
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notify.handoff_notify(conversation_id=widget_client.conversation_id) == len(team)
