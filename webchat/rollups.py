"""Hourly per-site rollups and visitor-data retention (run by beat, see tasks.py)."""

import re
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from crm.models import Contact, Direction, Message
from tenants.models import Tenant
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


def rollups_refresh_due(*, hours: int = 2, now: datetime | None = None) -> int:
    """The beat's refresh: the last `hours`, or back to where the previous run got to when
    that is earlier (at most BACKFILL_MAX ago)."""
    now = now or timezone.now()
    since = now - timedelta(hours=hours)
    covered = cache.get(COVERED_UNTIL_KEY)
    if isinstance(covered, datetime) and covered < since:
        since = max(covered, now - BACKFILL_MAX)
    rows = rollups_refresh(since=since, until=now)
    cache.set(COVERED_UNTIL_KEY, now, timeout=None)
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
    with transaction.atomic():
        for (site_id, hour), values in counts.items():
            if site_id is None:
                continue
            WebChatHourlyRollup.objects.update_or_create(
                site_id=site_id, hour=hour, defaults=values
            )
    return len(counts)


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


def redact(text: str) -> str:
    return _PHONE_RE.sub("[phone]", _EMAIL_RE.sub("[email]", text))


def visitor_data_purge(*, tenant: Tenant, now: datetime | None = None) -> dict[str, int]:
    """Anonymize a tenant's visitor data older than its retention period.

    Sessions lose page, referrer, UTM, user agent and IP hash; contacts not seen since lose
    name, email and external id; visitors' messages have emails and phone numbers redacted;
    widget events are deleted. Conversations and their structure stay for reporting.
    """
    cutoff = (now or timezone.now()) - timedelta(days=tenant.pii_retention_days)
    stamp = timezone.now()
    sessions = WebChatSession.objects.filter(
        tenant=tenant, last_seen_at__lt=cutoff, anonymized_at__isnull=True
    ).update(
        page_url="",
        referrer="",
        utm={},
        user_agent="",
        ip_hash="",
        visitor_id="",
        anonymized_at=stamp,
    )
    stale_contacts = Contact.objects.filter(
        tenant=tenant, anonymized_at__isnull=True, updated_at__lt=cutoff
    ).exclude(conversations__last_message_at__gte=cutoff)
    contacts = stale_contacts.update(name="", email="", external_id="", anonymized_at=stamp)
    redacted = 0
    old_inbound = Message.objects.filter(
        tenant=tenant, direction=Direction.INBOUND, created_at__lt=cutoff
    ).exclude(metadata__has_key="redacted")
    for message in old_inbound.only("id", "text", "metadata").iterator(chunk_size=500):
        message.text = redact(message.text)
        message.metadata = {**message.metadata, "redacted": True}
        message.save(update_fields=["text", "metadata"])
        redacted += 1
    events, _ = WebChatEvent.objects.filter(tenant=tenant, created_at__lt=cutoff).delete()
    return {"sessions": sessions, "contacts": contacts, "messages": redacted, "events": events}
