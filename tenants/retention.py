"""Where a tenant's data retention got to, by kind of data (`Tenant.retention_marks`), so
that an hourly run with nothing new past its cutoff ends with one index probe per kind
instead of walking every row it redacted or deleted before.

A kind's mark `done_before` says: every row of that kind whose clock (the time its
retention counts from: a message's `created_at`, a session's `last_seen_at`...) is before
it has been done. A run looks only at the rows from the mark up to its cutoff, and moves
the mark up to the cutoff once its pass over them ran out of rows. That holds because:

- the clocks are stamped by us when a row is written and only move forward (but see
  `resweep` below): no row is written behind today's cutoff, as a retention period is at
  least a day;
- a mark moves only when its kind's pass saw every row of its range, not when the pass
  stopped at its batch budget (batches go by id, and ids are not in clock order);
- a mark never passes today's cutoff: a run given a later `now` covers more, but rows
  written after it must not fall behind its mark;
- a mark is a point in time, not a period: a shorter retention period moves the cutoff
  further past the mark (the range grows), a longer one puts the cutoff behind it (there
  is nothing to do: what lies behind was done, and stays done).

Kinds whose rows can come due behind their mark (a contact whose conversation moved to
another contact; an approval item decided long after it arrived, or delivered late with
Chatwoot's old time) pass `resweep`: once a day (RESWEEP) their pass starts again from the
first row, and `swept_at` records when it last did.

The webchat and support purges may run at once for a tenant: each writes only the keys of
its own kinds, merged into the column by the database in one UPDATE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Func, JSONField, Q, QuerySet, Value
from django.utils import timezone

from core.batches import Batches
from tenants.models import Tenant

RESWEEP = timedelta(days=1)


@dataclass(frozen=True)
class Window:
    """The rows a pass looks at: clock before `end` (the cutoff) and, unless `start` is
    None (from the first row), from `start` on."""

    start: datetime | None
    end: datetime

    def of(self, clock: str) -> Q:
        if self.start is None:
            return Q(**{f"{clock}__lt": self.end})
        return Q(**{f"{clock}__gte": self.start, f"{clock}__lt": self.end})


class RetentionMarks:
    """One run's marks for a tenant: `purge` runs a kind's pass over its window, and
    leaving the `with` block writes the marks of the kinds whose pass finished (also when
    the run is cut short by an exception, such as the task's soft time limit)."""

    def __init__(self, *, tenant: Tenant, now: datetime | None = None):
        days = timedelta(days=tenant.pii_retention_days)
        self.tenant = tenant
        self.stamp = timezone.now()
        self.cutoff = (now or self.stamp) - days
        self._reach = min(self.cutoff, self.stamp - days)
        self._moved: dict[str, dict[str, str]] = {}

    def __enter__(self) -> RetentionMarks:
        return self

    def __exit__(self, *exc_info) -> None:
        self.save()

    def window(self, kind: str, *, resweep: bool = False) -> Window | None:
        """The rows of `kind` this run looks at; None when there is nothing to do."""
        done_before, swept_at = self._mark(kind)
        sweep_due = resweep and (swept_at is None or swept_at <= self.stamp - RESWEEP)
        if done_before is None or sweep_due:
            return Window(None, self.cutoff)
        if done_before >= self.cutoff:
            return None
        return Window(done_before, self.cutoff)

    def purge(
        self,
        kind: str,
        queryset: QuerySet,
        *,
        clock: str | Callable[[Window], Q],
        each: Callable[[list], int],
        size: int,
        max_batches: int | None,
        resweep: bool = False,
    ) -> int:
        """Run `each` over the rows of `queryset` in the kind's window, a batch at a time
        (at most `max_batches`); the sum of what it returned. `clock` names the field the
        window applies to, or builds the window's filter."""
        window = self.window(kind, resweep=resweep)
        if window is None:
            return 0
        where = window.of(clock) if isinstance(clock, str) else clock(window)
        rows = Batches(queryset.filter(where), size=size, max_batches=max_batches)
        done = sum(each(batch) for batch in rows)
        if rows.exhausted:
            self._finished(kind, window)
        return done

    def save(self) -> None:
        """Write the marks that moved (one UPDATE, none when nothing moved)."""
        if not self._moved:
            return
        Tenant.objects.filter(pk=self.tenant.pk).update(
            retention_marks=_JSONMerged(F("retention_marks"), Value(self._moved, JSONField()))
        )
        self.tenant.retention_marks = {**(self.tenant.retention_marks or {}), **self._moved}
        self._moved = {}

    def _mark(self, kind: str) -> tuple[datetime | None, datetime | None]:
        """The kind's (done_before, swept_at); an unreadable mark counts as none (the run
        then starts from the first row, which is always right)."""
        mark = (self.tenant.retention_marks or {}).get(kind)
        try:
            done_before = datetime.fromisoformat(mark["done_before"])
            swept_at = mark.get("swept_at")
            return done_before, datetime.fromisoformat(swept_at) if swept_at else None
        except (KeyError, TypeError, ValueError, AttributeError):
            return None, None

    def _finished(self, kind: str, window: Window) -> None:
        swept_at = self.stamp if window.start is None else self._mark(kind)[1]
        self._moved[kind] = {"done_before": self._reach.isoformat()}
        if swept_at is not None:
            self._moved[kind]["swept_at"] = swept_at.isoformat()


class _JSONMerged(Func):
    """`column || value` on PostgreSQL (jsonb), `json_patch(column, value)` on SQLite: the
    value's keys replace the column's, and the column's other keys stay."""

    arg_joiner = " || "
    template = "(%(expressions)s)"
    output_field = JSONField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler,
            connection,
            function="JSON_PATCH",
            template="%(function)s(%(expressions)s)",
            arg_joiner=", ",
            **extra_context,
        )
