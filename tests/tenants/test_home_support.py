"""The support escalation tiles on the dashboard overview (`dashboard:home`)."""

import html
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tenants.models import Role
from tests.factories import ConversationFactory, MembershipFactory
from tests.factories.support import (
    ApprovalItemFactory,
    ChatwootConnectionFactory,
    ChatwootConversationLinkFactory,
)

HOME = reverse("dashboard:home")
SECTION = re.compile(r'<section [^>]*aria-labelledby="support-tiles">(.*?)</section>', re.S)


def section_html(response) -> str:
    assert response.status_code == 200
    match = SECTION.search(response.content.decode())
    assert match, "no support section on the overview"
    return match.group(1)


def support_section(response) -> str:
    """The tiles' section as plain text, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", section_html(response))).split())


def waiting(connection, *, minutes_ago: int, **kwargs):
    """An open Chatwoot conversation whose customer wrote `minutes_ago` (less half a minute,
    so that whole minutes left or over read the same for the test's duration), no reply yet."""
    return ChatwootConversationLinkFactory(
        connection=connection,
        first_customer_message_at=timezone.now() - timedelta(minutes=minutes_ago, seconds=-30),
        **kwargs,
    )


@pytest.fixture
def connection(tenant):
    return ChatwootConnectionFactory(tenant=tenant, name="Main", sla_minutes=30)


def test_tiles_show_the_tenants_counts_and_most_urgent(client, tenant, viewer, connection):
    webchat = ConversationFactory(tenant=tenant)
    waiting(connection, minutes_ago=42, chatwoot_conversation_id=701, contact_name="Ada Late")
    waiting(
        connection,
        minutes_ago=27,
        chatwoot_conversation_id=702,
        contact_name="Ben Soon",
        conversation=webchat,
    )
    waiting(connection, minutes_ago=20, chatwoot_conversation_id=703, contact_name="Cy Warn")
    waiting(connection, minutes_ago=2, chatwoot_conversation_id=704, contact_name="Di Calm")
    answered = waiting(connection, minutes_ago=50, contact_name="Ed Answered")
    answered.first_response_at = timezone.now() - timedelta(minutes=45)
    answered.save(update_fields=["first_response_at"])
    ApprovalItemFactory(link=answered)
    ApprovalItemFactory(link=answered)

    client.force_login(viewer)
    response = client.get(HOME)
    text = support_section(response)

    assert "1 SLA breached past due" in text
    assert "1 Urgent due in < 5 min" in text
    assert "1 Warning due in 5–15 min" in text
    assert "1 Normal due in > 15 min" in text
    # 5 conversations this week, 1 overdue (the answered one was on time)
    assert "20 % breach rate, 7 days (1 of 5; target < 5 %)" in text
    assert "2 drafts waiting for approval" in text
    # most urgent first, with the time over or left; the calm one and the answered one are not listed
    assert text.index("#701 Ada Late") < text.index("#702 Ben Soon") < text.index("#703 Cy Warn")
    assert "#701 Ada Late 11 minutes overdue" in text
    assert "#703 Cy Warn due in 10 minutes" in text
    assert "Di Calm" not in text and "Ed Answered" not in text
    body = response.content.decode()
    assert f'href="{reverse("crm:conversation", args=[webchat.pk])}">#702 Ben Soon' in body
    assert f'href="{reverse("support:home")}">#701 Ada Late' in body
    assert f'href="{reverse("support:approvals")}"' in body
    assert 'class="lvl lvl-breach"' in body  # the shared level badge and its styles
    assert ".lvl-breach {" in body


def test_another_tenants_escalations_never_show(client, tenant, other_tenant, owner, connection):
    waiting(connection, minutes_ago=40, chatwoot_conversation_id=801, contact_name="Own Customer")
    theirs = ChatwootConnectionFactory(tenant=other_tenant, name="Theirs")
    for n in range(3):
        waiting(
            theirs, minutes_ago=45, chatwoot_conversation_id=990 + n, contact_name="Zed Foreign"
        )
    ApprovalItemFactory(link=waiting(theirs, minutes_ago=1, contact_name="Zed Foreign"))

    client.force_login(owner)
    text = support_section(client.get(HOME))

    assert "#801 Own Customer" in text
    assert "1 SLA breached" in text
    assert "0 drafts waiting for approval" in text
    assert "Zed Foreign" not in text and "#990" not in text


def test_without_a_connection_an_empty_state_explains_it(client, tenant, other_tenant, viewer):
    theirs = ChatwootConnectionFactory(tenant=other_tenant)
    waiting(theirs, minutes_ago=45, contact_name="Zed Foreign")

    client.force_login(viewer)
    response = client.get(HOME)
    text = support_section(response)

    assert "No Chatwoot connection yet" in text
    assert "first-response SLA" in text
    assert "breach rate" not in text and "Zed Foreign" not in text
    assert f'<a href="{reverse("support:home")}">the Support page</a>' in response.content.decode()
    # only staff can open the admin, so only they get the link to it
    assert reverse("admin:support_chatwootconnection_add") not in response.content.decode()


def test_empty_state_links_staff_to_the_admin(client, tenant):
    user = MembershipFactory(tenant=tenant, role=Role.OWNER).user
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client.force_login(user)
    body = client.get(HOME).content.decode()
    assert f'href="{reverse("admin:support_chatwootconnection_add")}"' in body


def test_a_quiet_connection_says_nobody_is_waiting(client, tenant, agent, connection):
    waiting(connection, minutes_ago=1)
    client.force_login(agent)
    text = support_section(client.get(HOME))
    assert "1 Normal" in text and "0 SLA breached" in text
    assert "0 % breach rate, 7 days (0 of 1;" in text
    assert "Nobody is close to their first-response deadline" in text


@pytest.mark.parametrize("role", [Role.VIEWER, Role.AGENT, Role.ADMIN, Role.OWNER])
def test_every_role_that_sees_the_overview_sees_the_tiles(client, tenant, connection, role):
    waiting(connection, minutes_ago=40, chatwoot_conversation_id=901, contact_name="Role Check")
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    assert "#901 Role Check" in support_section(client.get(HOME))


def test_query_count_does_not_grow_with_escalations(
    client, tenant, viewer, connection, django_assert_max_num_queries
):
    waiting(connection, minutes_ago=40, conversation=ConversationFactory(tenant=tenant))
    ApprovalItemFactory(link=waiting(connection, minutes_ago=20))
    client.force_login(viewer)
    client.get(HOME)
    # session, user, membership ×2, conversation counts; connection, waiting links, 7-day
    # totals, approval depth
    with django_assert_max_num_queries(10) as few:
        client.get(HOME)
    second = ChatwootConnectionFactory(tenant=tenant, name="Second", sla_minutes=60)
    for n in range(12):
        link = waiting(
            second if n % 2 else connection,
            minutes_ago=35 + n,
            conversation=ConversationFactory(tenant=tenant),
        )
        ApprovalItemFactory(link=link)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(HOME)
    # the few most urgent only; the rest are a click away
    assert section_html(response).count("<time ") == 5
    assert "7 SLA breached" in support_section(response)  # the second connection's SLA is 60
