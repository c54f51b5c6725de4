"""Model rows read and written by SQL written once, for the few statements on a hot path.

Building and compiling an ORM query costs more CPU than the database spends answering it
(about 1.3 ms for the visitor-message route's locked read on the machines we measure).
The statements here are plain strings built from the models' own metadata once per
process; rows become model instances the way the ORM makes them (`Model.from_db`, the
fields' and the backend's converters), so nothing downstream can tell the difference.
On PostgreSQL they run as prepared statements (`cursor`), so the server parses and plans
each once per connection. Everywhere else, use the ORM.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.fields import AutoFieldMixin

try:
    from django.db.backends.postgresql.base import (
        TIMESTAMPTZ_OID,
        Format,
        ServerBindingCursor,
        register_tzloader,
    )
except ImportError:  # no psycopg 3 (SQLite only, or psycopg2): never a prepared cursor
    ServerBindingCursor = None


def cursor(connection: BaseDatabaseWrapper):
    """A Django cursor for this module's statements, wrapped (logged, counted, its errors
    translated) like `connection.cursor()`.

    On PostgreSQL with psycopg 3 it binds the parameters on the server, so psycopg can
    prepare a statement once it runs again on the same connection (`prepare_threshold`,
    set by the settings unless `DATABASE_PREPARED_STATEMENTS` is off): later runs skip
    parsing and planning, which cost the server more than running these statements. A
    statement run once per connection (`CONN_MAX_AGE=0`) is never prepared, so it costs
    no extra round trip. Django's own cursors bind on the client and never prepare.
    While queries are logged (DEBUG, tests counting queries) nothing is prepared: psycopg
    keeps no query text for a prepared run, and the log shows it.

    psycopg forgets every prepared statement on a ROLLBACK (a savepoint's too), and one
    whose result columns changed type (a migration) fails once with "cached plan must
    not change result type" (`is_stale_plan`); the rollback that follows clears it.
    """
    if ServerBindingCursor is None or connection.vendor != "postgresql":
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        raw = _PreparedCursor(connection.connection)
    raw.logged = connection.queries_logged
    # as the backend's `create_cursor` does
    tzloader = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
    if connection.timezone != tzloader.timezone:
        register_tzloader(connection.timezone, raw)
    return connection._prepare_cursor(raw)


def is_stale_plan(error: BaseException) -> bool:
    """Did a prepared statement fail because a migration changed its result's types?
    Its transaction can be retried once (the rollback made psycopg forget it)."""
    cause = error.__cause__ or error
    return getattr(cause, "sqlstate", None) == "0A000" and "cached plan" in str(cause)


if ServerBindingCursor is not None:

    class _PreparedCursor(ServerBindingCursor):
        logged = False

        def execute(self, query, params=None, *, prepare=None, binary=None):
            if self.logged:
                prepare = False
            return super().execute(query, params, prepare=prepare, binary=binary)


@dataclass(frozen=True)
class Columns:
    """A model's concrete fields as read by one statement, in table `alias`."""

    model: type[models.Model]
    alias: str
    fields: tuple[models.Field, ...]
    # per database alias: [(index, converters, column)] for the fields that need converting
    _converters: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, model: type[models.Model], alias: str, names: Iterable[str] | None = None):
        if names is None:
            fields = tuple(model._meta.concrete_fields)
        else:
            fields = tuple(model._meta.get_field(name) for name in names)
        return cls(model, alias, fields)

    def __len__(self) -> int:
        return len(self.fields)

    def select(self, connection: BaseDatabaseWrapper, *, labels: str = "") -> str:
        """The select list; with `labels`, each column named `<labels><n>` (so a CTE of
        several tables' columns has no two of the same name)."""
        quote = connection.ops.quote_name
        columns = [f"{quote(self.alias)}.{quote(f.column)}" for f in self.fields]
        if labels:
            columns = [f"{c} AS {quote(f'{labels}{n}')}" for n, c in enumerate(columns)]
        return ", ".join(columns)

    def values(self, connection: BaseDatabaseWrapper, row: Sequence[Any]) -> list[Any]:
        """The row's values as Python values, converted as the ORM converts them."""
        plan = self._converters.get(connection.alias)
        if plan is None:
            plan = self._converters[connection.alias] = self._plan(connection)
        out = list(row)
        for index, converters, column in plan:
            for converter in converters:
                out[index] = converter(out[index], column, connection)
        return out

    def _plan(self, connection: BaseDatabaseWrapper) -> list:
        """Which converters the ORM's compiler would apply to each column (as in
        `SQLCompiler.get_converters`): the backend's, then the field's."""
        plan = []
        for index, model_field in enumerate(self.fields):
            column = model_field.get_col(self.alias)
            backend = connection.ops.get_db_converters(column)
            converters = backend + column.get_db_converters(connection)
            if converters:
                plan.append((index, converters, column))
        return plan

    def load(self, connection: BaseDatabaseWrapper, row: Sequence[Any]) -> models.Model:
        """A model instance from the row (all of this model's concrete fields, in order)."""
        names = [f.attname for f in self.fields]
        return self.model.from_db(connection.alias, names, self.values(connection, row))


def insert(connection: BaseDatabaseWrapper, instance: models.Model) -> None:
    """A new row's `instance.save()` without the ORM's query building, for a plain model
    (an auto-increment primary key, no parent model, no database-computed field): one
    INSERT that returns the primary key, `auto_now`/`auto_now_add` fields set on the
    instance, no signals. Needs a backend that returns columns from an INSERT
    (PostgreSQL, SQLite)."""
    if not connection.features.can_return_columns_from_insert:
        raise NotImplementedError(f"{connection.vendor} cannot return the inserted row's id")
    sql = _insert_sql(type(instance), connection.alias)
    fields = insert_fields(type(instance))
    params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    # as `save()` does: a failure inside `atomic` marks it for rollback
    with transaction.mark_for_rollback_on_error(using=connection.alias), cursor(connection) as rows:
        rows.execute(sql, params)
        (pk,) = rows.fetchone()
    inserted(connection, instance, pk)


@functools.cache
def insert_fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    """The columns an INSERT of a plain model writes, in order (all but the primary key)."""
    meta = model._meta
    computed = [f.name for f in meta.concrete_fields if f.generated or f.has_db_default()]
    if not isinstance(meta.pk, AutoFieldMixin) or meta.parents or computed:
        raise TypeError(f"core.rows.insert writes plain models only, not {model.__name__}")
    return tuple(f for f in meta.concrete_fields if not f.primary_key)


@functools.cache
def insert_into(model: type[models.Model], alias: str) -> tuple[str, str]:
    """`INSERT INTO <table> (<insert_fields' columns>)` and its placeholders, for a
    statement to finish (`VALUES (...)`, `SELECT ... FROM`, `ON CONFLICT`, `RETURNING`)."""
    quote = connections[alias].ops.quote_name
    fields = insert_fields(model)
    columns = ", ".join(quote(f.column) for f in fields)
    table = quote(model._meta.db_table)
    return f"INSERT INTO {table} ({columns})", ", ".join(["%s"] * len(fields))


@functools.cache
def _insert_sql(model: type[models.Model], alias: str) -> str:
    into, placeholders = insert_into(model, alias)
    pk = connections[alias].ops.quote_name(model._meta.pk.column)
    return f"{into} VALUES ({placeholders}) RETURNING {pk}"


def inserted(connection: BaseDatabaseWrapper, instance: models.Model, pk: Any) -> None:
    """Mark an instance as the row just inserted with `pk` (as `save()` leaves it)."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias


def update_fields(
    connection: BaseDatabaseWrapper, instance: models.Model, names: Sequence[str]
) -> int:
    """`instance.save(update_fields=names)` without the ORM's query building: one UPDATE
    by primary key, `auto_now` fields refreshed (name them), no signals. Rows matched."""
    sql, fields = _update_sql(type(instance), tuple(names), connection.alias)
    params = [f.get_db_prep_save(f.pre_save(instance, False), connection) for f in fields]
    with transaction.mark_for_rollback_on_error(using=connection.alias), cursor(connection) as rows:
        rows.execute(sql, [*params, instance.pk])
        return rows.rowcount


@functools.cache
def _update_sql(
    model: type[models.Model], names: tuple[str, ...], alias: str
) -> tuple[str, list[models.Field]]:
    fields = [model._meta.get_field(name) for name in names]
    quote = connections[alias].ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    sql = f"UPDATE {table} SET {assignments} WHERE {pk} = %s"  # noqa: S608 - identifiers only
    return sql, fields
