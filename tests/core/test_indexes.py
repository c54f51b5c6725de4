"""The indexes a table is written with: each one must be worth its cost on every insert."""

from django.apps import apps
from django.db import connection

from core.models import TenantOwnedModel
from crm.models import Conversation, Message


def _index_columns(model) -> list[list[str]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return [c["columns"] for c in constraints.values() if c["index"] or c["unique"]]


def test_every_tenant_owned_table_can_look_up_rows_by_tenant(db):
    """Tenant-scoped selectors and the tenant's cascade delete need an index led by it."""
    owned = [m for m in apps.get_models() if issubclass(m, TenantOwnedModel)]
    assert Conversation in owned
    unindexed = [
        model._meta.label
        for model in owned
        if not any(columns[:1] == ["tenant_id"] for columns in _index_columns(model))
    ]
    assert unindexed == []


def test_a_visitor_message_writes_only_the_indexes_queries_use(db):
    """Every visitor message inserts a message and updates its conversation (never a HOT
    update: last_message_at is indexed). No index is a prefix of another, and none is on
    updated_at, which nothing looks these rows up by."""
    for model in (Message, Conversation):
        indexes = _index_columns(model)
        assert ["updated_at"] not in indexes, model
        redundant = [
            a
            for a in indexes
            for b in indexes
            if a is not b and len(a) < len(b) and b[: len(a)] == a
        ]
        assert redundant == [], model
    assert len(_index_columns(Message)) <= 5
    assert len(_index_columns(Conversation)) <= 5
