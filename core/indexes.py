"""Indexes that build on every database this project runs on."""

from django.db import models
from django.db.models.expressions import OrderBy


class NullsOrderIndex(models.Index):
    """An index with NULLS FIRST/LAST in its order (PostgreSQL needs it there for an
    ORDER BY ... NULLS LAST to be read in index order). SQLite has no NULLS FIRST/LAST in
    CREATE INDEX and needs none where it is its own order (NULLs first ascending, last
    descending): there it is left out. A SQLite table remake (AlterField, RemoveField, ...)
    rebuilds its indexes from the model state, through here."""

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor == "sqlite" and self.expressions:
            plain = models.Index(
                *[_sqlite_order(e) for e in self.expressions],
                name=self.name,
                db_tablespace=self.db_tablespace,
                opclasses=self.opclasses,
                condition=self.condition,
                include=self.include,
            )
            return plain.create_sql(model, schema_editor, using=using, **kwargs)
        return super().create_sql(model, schema_editor, using=using, **kwargs)


def _sqlite_order(expression):
    if isinstance(expression, OrderBy) and (expression.nulls_first or expression.nulls_last):
        if bool(expression.nulls_last) != expression.descending:
            raise ValueError(f"SQLite cannot index {expression!r}: not its NULLs order")
        return OrderBy(expression.expression, descending=expression.descending)
    return expression
