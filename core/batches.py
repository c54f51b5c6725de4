"""Bulk writes in bounded batches, for housekeeping over rows that may number millions.

Each batch is its own statement (its own transaction outside `atomic`), so no statement
locks or rewrites an unbounded set of rows, and a run cut short (a task's time limit, a
deploy) keeps what its finished batches did: the next run starts where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Model, QuerySet


class Batches:
    """The rows of `queryset` by primary key, `size` at a time, at most `max_batches` lists.
    Each list is read once the caller is done with the one before, from past its last key,
    so whatever the caller wrote (or left alone) never comes round again.

    After the loop, `exhausted` tells whether the rows ran out (every row was seen) rather
    than the budget: a last list that is full leaves it False, as more rows may follow."""

    def __init__(self, queryset: QuerySet, *, size: int, max_batches: int | None = None):
        self.queryset = queryset.order_by("pk")
        self.size = size
        self.max_batches = max_batches
        self.exhausted = False

    def __iter__(self) -> Iterator[list]:
        read = 0
        last: Model | None = None
        while self.max_batches is None or read < self.max_batches:
            rows = self.queryset if last is None else self.queryset.filter(pk__gt=last.pk)
            batch = list(rows[: self.size])
            if not batch:
                self.exhausted = True
                return
            yield batch
            read += 1
            if len(batch) < self.size:
                self.exhausted = True
                return
            last = batch[-1]


def _by_pk(batch: list[Model], queryset: QuerySet) -> QuerySet:
    return queryset.model._base_manager.filter(pk__in=[row.pk for row in batch])


def delete_batch(batch: list[Model], queryset: QuerySet) -> int:
    """Delete one batch read from `queryset`; how many rows of its model went."""
    return _by_pk(batch, queryset).delete()[1].get(queryset.model._meta.label, 0)


def update_batch(batch: list[Model], queryset: QuerySet, **values) -> int:
    """`update(**values)` on one batch read from `queryset`; how many rows changed."""
    return _by_pk(batch, queryset).update(**values)


def delete_in_batches(queryset: QuerySet, *, size: int, max_batches: int | None = None) -> int:
    """Delete the rows of `queryset`, `size` at a time; how many rows of its model went."""
    return sum(
        delete_batch(batch, queryset)
        for batch in Batches(queryset.only("pk"), size=size, max_batches=max_batches)
    )
