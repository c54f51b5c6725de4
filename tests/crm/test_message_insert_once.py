"""crm.services.message_insert_once: one INSERT ... ON CONFLICT DO NOTHING per message."""

import pytest
from django.db.models.signals import post_save, pre_save

from crm.models import Direction, Message, SenderType
from crm.services import message_insert_once
from tests.factories.core import ConversationFactory

pytestmark = pytest.mark.django_db


def _message(conversation, text, client_message_id="c-1"):
    return Message(
        tenant_id=conversation.tenant_id,
        conversation_id=conversation.pk,
        direction=Direction.INBOUND,
        sender_type=SenderType.VISITOR,
        text=text,
        client_message_id=client_message_id,
        metadata={"session_id": 7},
    )


def test_inserts_once_per_conversation_and_client_id(django_assert_num_queries):
    conversation = ConversationFactory()
    first = _message(conversation, "hello")
    with django_assert_num_queries(1):  # no savepoint, no read first
        assert message_insert_once(first) is True
    stored = Message.objects.get(pk=first.pk)
    assert (stored.text, stored.client_message_id, stored.metadata) == (
        "hello",
        "c-1",
        {"session_id": 7},
    )
    assert stored.created_at == first.created_at and stored.updated_at == first.updated_at
    assert first._state.adding is False

    retry = _message(conversation, "hello, edited")
    assert message_insert_once(retry) is False
    assert retry.pk is None
    assert Message.objects.get(pk=first.pk).text == "hello"  # what was accepted stays

    elsewhere = _message(ConversationFactory(tenant=conversation.tenant), "hello")
    assert message_insert_once(elsewhere) is True
    assert Message.objects.filter(client_message_id="c-1").count() == 2


def test_needs_a_client_id():
    with pytest.raises(ValueError):
        message_insert_once(_message(ConversationFactory(), "hi", client_message_id=None))


def test_message_has_no_save_signal_receivers_to_skip():
    """The insert bypasses Model.save(); a receiver added later would silently not run."""
    assert not pre_save.has_listeners(Message)
    assert not post_save.has_listeners(Message)
