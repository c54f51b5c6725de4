"""The webchat message counters count every stored message once, wherever it is stored."""

import pytest
from django.test import TestCase
from prometheus_client import REGISTRY

from crm.models import Conversation
from support.services import agent_reply_to_webchat
from tests.factories.support import ChatwootConnectionFactory, ChatwootConversationLinkFactory
from tests.widget_client import WidgetClient

pytestmark = pytest.mark.django_db(transaction=True)  # on-commit counting


def stored(direction: str) -> float:
    return (
        REGISTRY.get_sample_value("replybase_webchat_messages_total", {"direction": direction})
        or 0.0
    )


def test_replies_count_once_whether_a_flow_the_ai_or_an_agent_wrote_them(client, site, flow_bot):
    widget = WidgetClient(client, site.site_key)
    widget.init()
    before_in, before_out = stored("inbound"), stored("outbound")
    widget.send("what is your pricing?")  # a flow reply, stored in the request
    assert (stored("inbound"), stored("outbound")) == (before_in + 1, before_out + 1)
    widget.send("do you sell gift cards?")  # the AI reply, stored by the (eager) task
    assert (stored("inbound"), stored("outbound")) == (before_in + 2, before_out + 2)

    conversation = Conversation.objects.get()
    link = ChatwootConversationLinkFactory(
        connection=ChatwootConnectionFactory(tenant=site.tenant), conversation=conversation
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        agent_reply_to_webchat(
            link=link, chatwoot_message_id=7, text="Hi, Sam here", agent_name="Sam"
        )
        agent_reply_to_webchat(
            link=link, chatwoot_message_id=7, text="Hi, Sam here", agent_name="Sam"
        )
    assert stored("outbound") == before_out + 3  # the redelivered reply is stored once
