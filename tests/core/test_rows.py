"""core.rows: rows read and written by hand-built SQL look exactly like the ORM's."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bots.models import Bot
from core.rows import Columns, update_fields
from crm.models import Conversation, ConversationStatus
from tests.factories import BotFactory
from tests.factories.core import ConversationFactory

pytestmark = pytest.mark.django_db


def _row(model, pk):
    columns = Columns.of(model, "t")
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns.select(connection)} FROM {table} t WHERE t.id = %s",  # noqa: S608
            [pk],
        )
        return columns, cursor.fetchone()


def _fields(instance):
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_a_loaded_row_is_the_instance_the_orm_loads():
    bot = BotFactory()
    conversation = ConversationFactory(
        tenant=bot.tenant,
        bot=bot,
        bot_state={"ai_waiting": [3, 4], "awaiting": "email", "nested": {"ok": True}},
        last_message_at=timezone.now(),
        pending_reply_since=timezone.now() - timedelta(seconds=5),
    )
    for model, pk in ((Conversation, conversation.pk), (Bot, bot.pk)):
        columns, row = _row(model, pk)
        loaded = columns.load(connection, row)
        orm = model.objects.get(pk=pk)
        assert _fields(loaded) == _fields(orm)
        assert loaded._state.adding is False and loaded._state.db == "default"
    loaded_state = Columns.of(Conversation, "t").load(
        connection, _row(Conversation, conversation.pk)[1]
    )
    assert loaded_state.bot_state["nested"] == {"ok": True}  # JSON decoded, not a string


def test_update_fields_writes_only_the_named_fields_and_refreshes_updated_at():
    conversation = ConversationFactory(status=ConversationStatus.OPEN, bot_state={})
    before = Conversation.objects.get(pk=conversation.pk).updated_at
    # someone else changes a field this write does not name
    Conversation.objects.filter(pk=conversation.pk).update(external_session_id="kept")
    conversation.status = ConversationStatus.HANDOFF
    conversation.bot_state = {"handoff_reason": "asked"}
    conversation.external_session_id = "stale copy"
    assert update_fields(connection, conversation, ["status", "bot_state", "updated_at"]) == 1
    stored = Conversation.objects.get(pk=conversation.pk)
    assert stored.status == ConversationStatus.HANDOFF
    assert stored.bot_state == {"handoff_reason": "asked"}
    assert stored.external_session_id == "kept"
    assert stored.updated_at > before
    assert conversation.updated_at == stored.updated_at  # auto_now set on the instance too


def test_update_fields_of_a_deleted_row_matches_nothing():
    conversation = ConversationFactory()
    Conversation.objects.filter(pk=conversation.pk).delete()
    assert update_fields(connection, conversation, ["status"]) == 0
