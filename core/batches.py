"""Bulk writes in bounded batches, for housekeeping over rows that may number millions.

Each batch is its own statement (its own transaction outside `atomic`), so no statement
locks or rewrites an unbounded set of rows, and a run cut short (a task's time limit, a
deploy) keeps what its finished batches did: the next run starts where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Model, QuerySet


def batches(queryset: QuerySet, *, size: int, max_batches: int | None = None) -> Iterator[list]:
    """The rows of `queryset` by primary key, `size` at a time, at most `max_batches` lists.
    Each list is read once the caller is done with the one before, from past its last key,
    so whatever the caller wrote (or left alone) never comes round again."""
    ordered = queryset.order_by("pk")
    read = 0
    last: Model | None = None
    while max_batches is None or read < max_batches:
        rows = ordered if last is None else ordered.filter(pk__gt=last.pk)
        batch = list(rows[:size])
        if not batch:
            return
        yield batch
        read += 1
        if len(batch) < size:
            return
        last = batch[-1]


def _by_pk(batch: list[Model], queryset: QuerySet) -> QuerySet:
    return queryset.model._base_manager.filter(pk__in=[row.pk for row in batch])


def delete_in_batches(queryset: QuerySet, *, size: int, max_batches: int | None = None) -> int:
    """Delete the rows of `queryset`, `size` at a time; how many rows of its model went."""
    label = queryset.model._meta.label
    return sum(
        _by_pk(batch, queryset).delete()[1].get(label, 0)
        for batch in batches(queryset.only("pk"), size=size, max_batches=max_batches)
    )


def update_in_batches(
    queryset: QuerySet, *, size: int, max_batches: int | None = None, **values
) -> int:
    """`queryset.update(**values)`, `size` rows at a time; how many rows changed."""
    return sum(
        _by_pk(batch, queryset).update(**values)
        for batch in batches(queryset.only("pk"), size=size, max_batches=max_batches)
    )
