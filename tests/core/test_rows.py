"""core.rows: rows read and written by hand-built SQL look exactly like the ORM's."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bots.models import Bot
from core.rows import Columns, cursor, insert, update_fields
from crm.models import Conversation, ConversationStatus, Direction, Message, SenderType
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


def test_insert_stores_the_row_the_orm_would_and_marks_the_instance_saved():
    conversation = ConversationFactory()
    values = {
        "tenant_id": conversation.tenant_id,
        "conversation_id": conversation.pk,
        "direction": Direction.OUTBOUND,
        "sender_type": SenderType.BOT,
        "text": "We're open 9-17.",
        "metadata": {"ai_outcome": "flow", "quick_replies": [{"label": "A", "value": "a"}]},
    }
    message = Message(**values)
    insert(connection, message)
    orm = Message.objects.create(**values)
    stored = Message.objects.get(pk=message.pk)
    assert message.pk is not None and message.pk != orm.pk
    assert message._state.adding is False and message._state.db == "default"
    assert message.created_at == stored.created_at and message.updated_at == stored.updated_at
    ignored = {"id", "created_at", "updated_at"}
    assert {k: v for k, v in _fields(stored).items() if k not in ignored} == {
        k: v for k, v in _fields(orm).items() if k not in ignored
    }
    assert stored.client_message_id is None and stored.metadata == values["metadata"]


def _prepared_here(statement_start: str) -> int:
    with connection.cursor() as rows:
        rows.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            [statement_start + "%"],
        )
        return rows.fetchone()[0]


def test_the_cursor_prepares_a_statement_from_its_second_run_on_a_connection():
    conversation = ConversationFactory(status=ConversationStatus.OPEN)
    table = connection.ops.quote_name(Conversation._meta.db_table)
    assert connection.connection.prepare_threshold is not None  # the settings allow it
    conversation.status = ConversationStatus.HANDOFF
    update_fields(connection, conversation, ["status"])
    # run once (a connection per request, CONN_MAX_AGE=0): no extra round trip to prepare
    assert _prepared_here(f"UPDATE {table}") == 0
    for status in (ConversationStatus.OPEN, ConversationStatus.HANDOFF, ConversationStatus.OPEN):
        conversation.status = status
        assert update_fields(connection, conversation, ["status"]) == 1
    assert _prepared_here(f"UPDATE {table}") == 1  # parsed and planned once, then reused
    assert Conversation.objects.get(pk=conversation.pk).status == ConversationStatus.OPEN


def test_while_queries_are_logged_the_log_shows_the_statements_sql():
    conversation = ConversationFactory(status=ConversationStatus.OPEN)
    table = connection.ops.quote_name(Conversation._meta.db_table)
    with CaptureQueriesContext(connection) as queries:
        conversation.status = ConversationStatus.HANDOFF
        update_fields(connection, conversation, ["status"])
    (query,) = queries.captured_queries
    assert query["sql"].startswith(f"UPDATE {table} SET")  # not None, as a prepared one


def test_without_prepared_statements_nothing_is_prepared(monkeypatch):
    # DATABASE_PREPARED_STATEMENTS=false (a pooler that cannot keep them): nothing prepared
    connection.ensure_connection()
    monkeypatch.setattr(connection.connection, "prepare_threshold", None)
    with cursor(connection) as rows:
        rows.execute("SELECT %s::int + 1 AS answer_unprepared", [41])
        assert rows.fetchone() == (42,)
    assert _prepared_here("SELECT $1::int + 1 AS answer_unprepared") == 0


def test_prepared_statements_can_be_turned_off_for_a_pooler(monkeypatch):
    from config.settings.base import database_tuned

    postgres = {"ENGINE": "django.db.backends.postgresql"}
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", "false")
    assert "prepare_threshold" not in database_tuned(dict(postgres))["OPTIONS"]
    assert database_tuned(dict(postgres), prepared=True)["OPTIONS"]["prepare_threshold"] == 1
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", "true")
    assert database_tuned(dict(postgres))["OPTIONS"]["prepare_threshold"] == 1
    sqlite = database_tuned({"ENGINE": "django.db.backends.sqlite3"}, conn_max_age=0)
    assert sqlite["OPTIONS"] == {"transaction_mode": "IMMEDIATE", "timeout": 20}
    assert sqlite["CONN_MAX_AGE"] == 0


def test_a_failed_insert_inside_atomic_marks_it_for_rollback_as_save_does():
    conversation = ConversationFactory()
    broken = Message(
        tenant_id=conversation.tenant_id,
        conversation_id=conversation.pk,
        direction=Direction.OUTBOUND,
        sender_type=SenderType.BOT,
        text=None,  # NOT NULL
    )
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            insert(connection, broken)
        assert connection.needs_rollback is True
    assert broken._state.adding is True and broken.pk is None


def test_insert_refuses_a_model_whose_primary_key_the_database_does_not_assign():
    from django.contrib.sessions.models import Session  # its key is set by the caller

    with pytest.raises(TypeError, match="plain models only"):
        insert(connection, Session(session_key="k", session_data="", expire_date=timezone.now()))
    assert not Session.objects.exists()
