"""Hourly per-site rollups and visitor-data retention (run by beat, see tasks.py)."""

import re
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from core.batches import delete_batch, update_batch
from crm.models import Contact, Conversation, Direction, Message
from tenants.models import Tenant
from tenants.retention import RetentionMarks, Window
from webchat.models import EventType, WebChatEvent, WebChatHourlyRollup, WebChatSession

_ERROR_EVENTS = Q(type=EventType.ERROR)
_WIDGET_EVENTS = Q(
    type__in=[
        EventType.WIDGET_LOADED,
        EventType.LAUNCHER_OPENED,
        EventType.LAUNCHER_CLOSED,
        EventType.MESSAGE_SENT,
        EventType.MESSAGE_RENDERED,
        EventType.ERROR,
    ]
)


def hour_start(value: datetime) -> datetime:
    """The start of the UTC hour `value` falls in (rows are per UTC hour: an offset such as
    +05:30 must not move the boundary)."""
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# Where the beat's refresh got to, so that after an outage (no beat for hours) the next
# run recomputes every hour since, not just the last two.
COVERED_UNTIL_KEY = "webchat:rollups:covered-until"
BACKFILL_MAX = timedelta(days=7)
# A catch-up goes this many hours per transaction, oldest first, moving the mark after each:
# one cut short by the task's time limit keeps what it did and the next run carries on (a
# single transaction over days of hours could run out of time on every run, starting over).
BACKFILL_STEP = timedelta(hours=6)


def rollups_refresh_due(*, hours: int = 2, now: datetime | None = None) -> int:
    """The beat's refresh: the last `hours`, or back to where the previous run got to when
    that is earlier (at most BACKFILL_MAX ago)."""
    now = now or timezone.now()
    since = now - timedelta(hours=hours)
    covered = cache.get(COVERED_UNTIL_KEY)
    if isinstance(covered, datetime) and covered < since:
        since = max(covered, now - BACKFILL_MAX)
    rows = 0
    start = hour_start(since)
    while start < now:
        end = min(start + BACKFILL_STEP, now)  # whole hours, so no hour is in two steps
        rows += rollups_refresh(since=start, until=end)
        cache.set(COVERED_UNTIL_KEY, end, timeout=None)
        start = end
    return rows


def rollups_refresh(*, since: datetime, until: datetime | None = None) -> int:
    """Recompute every (site, hour) row between `since` and `until` from the raw rows."""
    start, end = hour_start(since), until or timezone.now()
    counts: dict[tuple[int, datetime], dict] = {}

    def add(rows, mapping):
        for row in rows:
            bucket = counts.setdefault(
                (row["site_id"], row["hour"]), {"tenant_id": row["tenant_id"]}
            )
            for field, source in mapping.items():
                bucket[field] = bucket.get(field, 0) + (row[source] or 0)

    sessions = WebChatSession.objects.filter(created_at__gte=start, created_at__lt=end)
    add(
        sessions.annotate(hour=TruncHour("created_at"))
        .values("site_id", "tenant_id", "hour")
        .annotate(n=Count("id"), c=Count("conversation_id", distinct=True)),
        {"sessions": "n", "conversations": "c"},
    )
    messages = Message.objects.filter(
        created_at__gte=start, created_at__lt=end, conversation__channel="web"
    )
    add(
        messages.annotate(hour=TruncHour("created_at"), site_id=_site_of_message())
        .values("site_id", "tenant_id", "hour")
        .annotate(
            inbound=Count("id", filter=Q(direction=Direction.INBOUND)),
            outbound=Count("id", filter=Q(direction=Direction.OUTBOUND)),
            answered=Count("id", filter=Q(metadata__ai_outcome="answered")),
            fallback=Count("id", filter=Q(metadata__ai_outcome="fallback")),
            timeout=Count("id", filter=Q(metadata__ai_outcome="timeout")),
            error=Count("id", filter=Q(metadata__ai_outcome="error")),
        ),
        {
            "messages_in": "inbound",
            "messages_out": "outbound",
            "ai_answered": "answered",
            "ai_fallback": "fallback",
            "ai_timeout": "timeout",
            "ai_error": "error",
        },
    )
    events = WebChatEvent.objects.filter(created_at__gte=start, created_at__lt=end)
    add(
        events.annotate(hour=TruncHour("created_at"))
        .values("site_id", "tenant_id", "hour")
        .annotate(
            widget=Count("id", filter=_WIDGET_EVENTS),
            errors=Count("id", filter=_ERROR_EVENTS),
            denied=Count("id", filter=Q(type=EventType.ORIGIN_DENIED)),
            tokens=Count(
                "id", filter=Q(type__in=[EventType.TOKEN_INVALID, EventType.CHALLENGE_INVALID])
            ),
            limited=Count("id", filter=Q(type=EventType.RATE_LIMITED)),
        ),
        {
            "widget_events": "widget",
            "error_events": "errors",
            "origin_denied": "denied",
            "token_failures": "tokens",
            "rate_limited": "limited",
        },
    )
    _rollups_write(counts)
    return len(counts)


# Rows per INSERT ... ON CONFLICT statement (18 columns: well under PostgreSQL's 65,535
# parameters).
ROLLUP_WRITE_BATCH = 1000


def _rollups_write(counts: dict[tuple[int, datetime], dict]) -> None:
    """Upsert the (site, hour) rows, a batch per statement: the beat rewrites every active
    site's last three hours every five minutes, and a read and a write per row (about
    1.6 ms) made a run over thousands of sites outlast the task's time limit.

    Like `update_or_create(defaults=values)`, a row's counters that no source counted
    this time (no events in that hour, say) keep their stored value on update and take
    the default on insert: rows are grouped by the counters they carry, since one
    statement updates one set of columns."""
    groups: dict[tuple[str, ...], list[WebChatHourlyRollup]] = {}
    for (site_id, hour), values in counts.items():
        if site_id is None:
            continue
        groups.setdefault(tuple(sorted(values)), []).append(
            WebChatHourlyRollup(site_id=site_id, hour=hour, **values)
        )
    with transaction.atomic():
        for fields, rows in groups.items():
            WebChatHourlyRollup.objects.bulk_create(
                rows,
                batch_size=ROLLUP_WRITE_BATCH,
                update_conflicts=True,
                unique_fields=["site", "hour"],
                update_fields=[*fields, "updated_at"],
            )


def _site_of_message():
    """The site of a message: the site of its conversation's (first) web session."""
    from django.db.models import OuterRef, Subquery

    return Subquery(
        WebChatSession.objects.filter(conversation_id=OuterRef("conversation_id"))
        .order_by("id")
        .values("site_id")[:1]
    )


_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_PHONE_RE = re.compile(r"\+?\d[\d ()./-]{7,}\d")


# Rows per batch of the retention purge: one UPDATE (or DELETE) statement each.
RETENTION_BATCH_SIZE = 500


def redact(text: str) -> str:
    return _PHONE_RE.sub("[phone]", _EMAIL_RE.sub("[email]", text))


def visitor_data_purge(
    *,
    tenant: Tenant,
    now: datetime | None = None,
    batch_size: int = RETENTION_BATCH_SIZE,
    max_batches: int | None = None,
) -> dict[str, int]:
    """Anonymize a tenant's visitor data older than its retention period.

    Sessions lose page, referrer, UTM, user agent and IP hash; contacts not seen since lose
    name, email and external id; widget events are deleted; every message (the visitor's,
    the bot's and the agents') has emails and phone numbers redacted. Conversations and
    their structure stay for reporting.

    Sessions, contacts, events and messages go in batches of `batch_size` rows, at most
    `max_batches` of each per run (None: all). Each batch commits on its own, so a run cut
    short keeps its work and the next one carries on; a second run over the same data
    changes and counts nothing. Each kind starts where the last run that finished it got
    to (tenants.retention), so a run with nothing new past the cutoff ends at once.
    """
    in_batches = {"size": batch_size, "max_batches": max_batches}
    with RetentionMarks(tenant=tenant, now=now) as marks:
        cutoff, stamp = marks.cutoff, marks.stamp
        sessions = WebChatSession.objects.filter(tenant=tenant, anonymized_at__isnull=True)
        anonymized_sessions = marks.purge(
            "sessions",
            sessions.only("pk"),
            clock="last_seen_at",
            each=lambda batch: update_batch(
                batch,
                sessions,
                page_url="",
                referrer="",
                utm={},
                user_agent="",
                ip_hash="",
                visitor_id="",
                anonymized_at=stamp,
            ),
            **in_batches,
        )
        stale_contacts = Contact.objects.filter(
            tenant=tenant, anonymized_at__isnull=True, updated_at__lt=cutoff
        ).exclude(conversations__last_message_at__gte=cutoff)
        contacts = marks.purge(
            "contacts",
            stale_contacts.only("pk"),
            clock=lambda window: _contacts_come_due(tenant, window),
            each=lambda batch: update_batch(
                batch, stale_contacts, name="", email="", external_id="", anonymized_at=stamp
            ),
            resweep=True,  # a conversation can move to another contact: see tenants.retention
            **in_batches,
        )
        events = WebChatEvent.objects.filter(tenant=tenant)
        deleted_events = marks.purge(
            "events",
            events.only("pk"),
            clock="created_at",
            each=lambda batch: delete_batch(batch, events),
            **in_batches,
        )
        messages = marks.purge(
            "messages",
            Message.objects.filter(tenant=tenant)
            .exclude(metadata__has_key="redacted")
            .only("id", "text", "metadata"),
            clock="created_at",
            each=_messages_mark_redacted,
            **in_batches,
        )
    return {
        "sessions": anonymized_sessions,
        "contacts": contacts,
        "messages": messages,
        "events": deleted_events,
    }


def _contacts_come_due(tenant: Tenant, window: Window) -> Q:
    """The contacts that may have come due in `window`: a contact is due once its own row
    and all its conversations are past the cutoff, so it is one updated in the window or
    one with a conversation whose last message fell in it (two index ranges)."""
    if window.start is None:
        return Q()
    crossed = (
        Contact.objects.filter(window.of("updated_at"), tenant=tenant)
        .values("pk")
        .union(
            Conversation.objects.filter(window.of("last_message_at"), tenant=tenant).values(
                "contact_id"
            )
        )
    )
    return Q(pk__in=crossed)


def _messages_mark_redacted(batch: list[Message]) -> int:
    """Write one batch in one statement: the redacted text where it changed, and
    `metadata.redacted` on all (it marks a message done, whether or not its text held
    anything, so no message is read twice); how many messages.

    On PostgreSQL, an UPDATE joined to the batch's (id, new text or NULL) pairs; elsewhere
    (the embedded SQLite mode) `bulk_update`, whose CASE WHEN per row costs about half a
    millisecond of Python per message, more than PostgreSQL spends on the whole batch.
    """
    texts = {m.id: redact(m.text) for m in batch}
    if connection.vendor != "postgresql":
        for message in batch:
            message.text = texts[message.id]
            message.metadata = {**message.metadata, "redacted": True}
        Message.objects.bulk_update(batch, ["text", "metadata"])
        return len(batch)
    table = connection.ops.quote_name(Message._meta.db_table)
    rows = ", ".join(["(%s::bigint, %s::text)"] * len(batch))
    params = []
    for message in batch:
        params += [message.id, texts[message.id] if texts[message.id] != message.text else None]
    with connection.cursor() as cursor:
        # Only placeholders and the model's own table name are formatted into the SQL.
        cursor.execute(
            f"UPDATE {table} AS m SET text = COALESCE(v.text, m.text), "  # noqa: S608
            """metadata = m.metadata || '{"redacted": true}'::jsonb """
            f"FROM (VALUES {rows}) AS v(id, text) WHERE m.id = v.id",
            params,
        )
    return len(batch)
