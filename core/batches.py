"""Bulk writes in bounded batches, for housekeeping over rows that may number millions.

Each batch is its own statement (its own transaction outside `atomic`), so no statement
locks or rewrites an unbounded set of rows, and a run cut short (a task's time limit, a
deploy) keeps what its finished batches did: the next run starts where it stopped.
"""

from __future__ import annotations

from django.db.models import QuerySet


def _in_batches(queryset: QuerySet, write, *, size: int, max_batches: int | None) -> int:
    """Call `write(rows with these ids)` on `queryset`'s rows, `size` ids at a time, until
    none is left; what the writes counted. `write` must take its rows out of `queryset`
    (delete them, or change what it filters on), or the next batch finds them again."""
    done = batches = 0
    while max_batches is None or batches < max_batches:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:size])
        if not ids:
            break
        done += write(queryset.model._base_manager.filter(pk__in=ids))
        batches += 1
        if len(ids) < size:
            break
    return done


def delete_in_batches(queryset: QuerySet, *, size: int, max_batches: int | None = None) -> int:
    """Delete the rows of `queryset`, `size` at a time; how many rows of its model went."""
    label = queryset.model._meta.label
    return _in_batches(
        queryset, lambda rows: rows.delete()[1].get(label, 0), size=size, max_batches=max_batches
    )


def update_in_batches(
    queryset: QuerySet, *, size: int, max_batches: int | None = None, **values
) -> int:
    """`queryset.update(**values)`, `size` rows at a time; how many rows changed. The
    values must take a row out of `queryset` (e.g. set what it filters on)."""
    return _in_batches(
        queryset, lambda rows: rows.update(**values), size=size, max_batches=max_batches
    )
