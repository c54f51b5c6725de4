"""Bulk writes in bounded batches, for housekeeping over rows that may number millions.

Each batch is its own statement (its own transaction outside `atomic`), so no statement
locks or rewrites an unbounded set of rows, and a run cut short (a task's time limit, a
deploy) keeps what its finished batches did: the next run starts where it stopped.
"""

from __future__ import annotations

from django.db.models import QuerySet


def delete_in_batches(queryset: QuerySet, *, size: int, max_batches: int | None = None) -> int:
    """Delete the rows of `queryset`, `size` at a time; how many rows of its model went."""
    label = queryset.model._meta.label
    deleted = batches = 0
    while max_batches is None or batches < max_batches:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:size])
        if not ids:
            break
        _, per_model = queryset.model._base_manager.filter(pk__in=ids).delete()
        deleted += per_model.get(label, 0)
        batches += 1
        if len(ids) < size:
            break
    return deleted
