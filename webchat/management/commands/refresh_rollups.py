"""`manage.py refresh_rollups [--hours N | --since ISO-DATETIME]`: recompute the hourly
per-site rollups from the raw rows (safe to rerun: each hour's row is replaced)."""

from datetime import UTC, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from webchat.rollups import hour_start, rollups_refresh

MAX_HOURS = 24 * 400


class Command(BaseCommand):
    help = "Recompute the hourly webchat rollups (the last --hours, or from --since)."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--hours", type=int, default=None, help="the last N hours (24)")
        group.add_argument(
            "--since",
            help="from this time (ISO 8601, UTC unless it says; at most 400 days back)",
        )

    def handle(self, *args, hours, since, **options):
        now = timezone.now()
        if since is not None:
            start = self._since(since)
            if start >= now:
                raise CommandError("--since is in the future: nothing to recompute.")
            if now - start > timedelta(hours=MAX_HOURS):
                raise CommandError(f"--since: at most {MAX_HOURS} hours back (400 days).")
        else:
            if hours is not None and not 1 <= hours <= MAX_HOURS:
                raise CommandError(f"--hours: give a number of hours from 1 to {MAX_HOURS}.")
            start = now - timedelta(hours=hours or 24)
        start = hour_start(start)  # rows are per UTC hour: all of the hour is recomputed
        rows = rollups_refresh(since=start, until=now)
        self.stdout.write(f"{rows} hourly rows recomputed since {start:%Y-%m-%d %H:%M} UTC.")

    @staticmethod
    def _since(value: str):
        example = "give an ISO 8601 time, e.g. 2026-12-01T08:00 or 2026-12-01T08:00+05:30"
        try:
            start = parse_datetime(value)
        except ValueError as exc:  # well-formed but impossible: 2026-02-30, +25:00
            raise CommandError(f"--since {value!r} is not a valid time ({exc}); {example}") from exc
        if start is None:
            raise CommandError(f"--since {value!r}: {example}")
        return timezone.make_aware(start, UTC) if timezone.is_naive(start) else start
