"""SQLite (the embedded `make run` mode) has no NULLS LAST in CREATE INDEX. Migration 0004
creates the inbox index per database, but a SQLite table remake (any later AlterField,
RemoveField or constraint change on crm_conversation) rebuilds the indexes from the model
state: that state must build on SQLite too."""

from django.db import connections

from crm.models import Conversation


def test_the_conversation_table_builds_on_sqlite_from_its_model_state(
    django_db_blocker, monkeypatch
):
    alias = "inbox_index_sqlite"
    monkeypatch.setitem(
        connections.settings,
        alias,
        {
            **connections["default"].settings_dict,
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ":memory:",
            "OPTIONS": {},
        },
    )
    sqlite = connections[alias]
    with django_db_blocker.unblock():
        try:
            with sqlite.schema_editor() as editor:
                editor.create_model(Conversation)  # what a table remake does
            with sqlite.cursor() as cursor:
                indexes = sqlite.introspection.get_constraints(cursor, "crm_conversation")
            assert indexes["conversation_inbox"]["columns"] == [
                "tenant_id",
                "last_message_at",
                "id",
            ]
        finally:
            sqlite.close()
            del connections[alias]


def test_the_inbox_index_keeps_nulls_last_on_postgresql(db):
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'conversation_inbox'")
        (definition,) = cursor.fetchone()
    assert "last_message_at DESC NULLS LAST, id DESC" in definition
