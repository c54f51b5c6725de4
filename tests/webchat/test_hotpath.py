"""webchat.hotpath: the locked read and idempotent insert of a visitor message, in one
statement (PostgreSQL) or two (elsewhere: forced here on PostgreSQL too)."""

from dataclasses import replace

import pytest
from django.db import transaction
from django.db.transaction import TransactionManagementError

from crm.models import Conversation, Direction, Message
from webchat import hotpath
from webchat.models import WebChatSession
from webchat.services import visitor_message
from webchat.tokens import session_token_read

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["one statement", "two statements"])
def mode(request, monkeypatch):
    if request.param == "two statements":
        monkeypatch.setattr(hotpath, "_one_statement", lambda connection: False)
    return request.param


@pytest.fixture
def claims(widget_client):
    widget_client.init()
    return session_token_read(widget_client.token)


def _message(claims, text, client_message_id="c-1"):
    return visitor_message(
        tenant_id=Conversation.objects.get(pk=claims.conversation_id).tenant_id,
        claims=claims,
        text=text,
        client_message_id=client_message_id,
    )


def _run(claims, message):
    with transaction.atomic():
        return hotpath.conversation_lock_and_insert(
            tenant_id=message.tenant_id, claims=claims, message=message
        )


def test_locks_loads_and_inserts_once(mode, claims, site, bot):
    first = _message(claims, "hello")
    conversation, created = _run(claims, first)
    assert created and first.pk is not None
    assert conversation.pk == claims.conversation_id
    assert conversation.bot == bot and conversation.bot.name == bot.name
    assert conversation.bot_state == {"visitor_spoke": False}  # JSON decoded
    session = WebChatSession.objects.get(pk=claims.session_id)
    assert conversation.session_last_seen_at == session.last_seen_at
    stored = Message.objects.get(pk=first.pk)
    assert (stored.text, stored.client_message_id) == ("hello", "c-1")

    retry = _message(claims, "hello again")
    conversation, created = _run(claims, retry)
    assert conversation is not None and created is False and retry.pk is None
    assert Message.objects.filter(conversation_id=claims.conversation_id).count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"visitor_id": "someone-else-entirely"},
        {"session_id": 10**9},
        {"site_id": 10**9},
    ],
)
def test_a_token_that_no_longer_matches_locks_nothing_and_stores_nothing(mode, claims, change):
    wrong = replace(claims, **change)
    assert _run(wrong, _message(wrong, "hello")) == (None, False)
    assert not Message.objects.filter(text="hello").exists()


def test_a_session_moved_to_another_conversation_locks_nothing(mode, claims, tenant):
    from tests.factories.core import ConversationFactory

    other = ConversationFactory(tenant=tenant)
    WebChatSession.objects.filter(pk=claims.session_id).update(conversation=other)
    assert _run(claims, _message(claims, "hello")) == (None, False)
    assert not Message.objects.filter(text="hello").exists()


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_it_refuses(claims):
    message = _message(claims, "hello")
    with pytest.raises(TransactionManagementError):
        hotpath.conversation_lock_and_insert(
            tenant_id=message.tenant_id, claims=claims, message=message
        )


@pytest.mark.django_db(transaction=True)
def test_a_migration_that_changes_a_returned_column_costs_the_visitor_nothing(widget_client, bot):
    """Another process changes the type of a column the prepared locking statement returns
    (a deploy's migration): the statement fails once with "cached plan must not change
    result type", and the route retries its transaction instead of answering 500."""
    import psycopg
    from django.db import connection

    widget_client.init()
    for n in range(2):  # the second run prepares the statement on this connection
        assert widget_client.send(f"hello {n}").status_code == 201
    table = connection.ops.quote_name(bot._meta.db_table)
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as other:
        other.execute(f"ALTER TABLE {table} ALTER COLUMN name TYPE varchar(121)")
        try:
            response = widget_client.send("after the migration")
        finally:
            other.execute(f"ALTER TABLE {table} ALTER COLUMN name TYPE varchar(120)")
    assert response.status_code == 201, response.content
    texts = list(
        Message.objects.filter(direction=Direction.INBOUND)
        .order_by("id")
        .values_list("text", flat=True)
    )
    assert texts == ["hello 0", "hello 1", "after the migration"]
