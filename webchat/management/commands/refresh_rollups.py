"""`manage.py refresh_rollups [--hours N | --since ISO-DATETIME]`: recompute the hourly
per-site rollups from the raw rows (safe to rerun: each hour's row is replaced)."""

from datetime import UTC, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from webchat.rollups import rollups_refresh


class Command(BaseCommand):
    help = "Recompute the hourly webchat rollups (the last --hours, or from --since)."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--hours", type=int, default=None, help="the last N hours (24)")
        group.add_argument("--since", help="from this time (ISO 8601, UTC unless it says)")

    def handle(self, *args, hours, since, **options):
        now = timezone.now()
        if since is not None:
            start = parse_datetime(since)
            if start is None:
                raise CommandError(
                    f"--since {since!r}: give an ISO 8601 time, e.g. 2026-12-01T08:00"
                )
            if timezone.is_naive(start):
                start = timezone.make_aware(start, UTC)
        else:
            if hours is not None and not 1 <= hours <= 24 * 400:
                raise CommandError("--hours: give a number of hours from 1 to 9600.")
            start = now - timedelta(hours=hours or 24)
        if start >= now:
            raise CommandError("--since is in the future: nothing to recompute.")
        rows = rollups_refresh(since=start, until=now)
        self.stdout.write(f"{rows} hourly rows recomputed since {start:%Y-%m-%d %H:%M} UTC.")
