"""First-response SLA: levels by time remaining, and breach detection.

A conversation breaches when it is open, the customer sent at least one message, and the
first response came (or still has not come) later than the connection's SLA minutes
after the first customer message. Levels by time remaining until that deadline:
more than 15 minutes normal, 5 to 15 warning, under 5 urgent, past the deadline breach.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from support import metrics
from support.alerts import alert_deliver, alert_record
from support.models import ChatwootConnection, ChatwootConversationLink, ChatwootStatus

log = structlog.get_logger(__name__)

WARNING_AT = timedelta(minutes=15)
URGENT_AT = timedelta(minutes=5)


class Level(StrEnum):
    NORMAL = "normal"
    WARNING = "warning"
    URGENT = "urgent"
    BREACH = "breach"


LEVEL_ORDER = {Level.BREACH: 0, Level.URGENT: 1, Level.WARNING: 2, Level.NORMAL: 3}


def level_for_remaining(remaining: timedelta) -> Level:
    """> 15 min normal; 5–15 min warning; under 5 min urgent; past the deadline breach."""
    if remaining < timedelta(0):
        return Level.BREACH
    if remaining < URGENT_AT:
        return Level.URGENT
    if remaining <= WARNING_AT:
        return Level.WARNING
    return Level.NORMAL


def level_at(due_at: datetime, now: datetime | None = None) -> Level:
    return level_for_remaining(due_at - (now or timezone.now()))


def deadline(link: ChatwootConversationLink, sla_minutes: int) -> datetime | None:
    if link.first_customer_message_at is None:
        return None
    return link.first_customer_message_at + timedelta(minutes=sla_minutes)


def is_breached(link: ChatwootConversationLink, sla_minutes: int, now: datetime) -> bool:
    due = deadline(link, sla_minutes)
    if link.status != ChatwootStatus.OPEN or due is None:
        return False
    return (link.first_response_at or now) > due


def link_level(link: ChatwootConversationLink, sla_minutes: int, now: datetime) -> Level | None:
    """The level of an open conversation still waiting for its first response."""
    due = deadline(link, sla_minutes)
    if link.status != ChatwootStatus.OPEN or due is None or link.first_response_at is not None:
        return None
    return level_at(due, now)


def link_responded(link: ChatwootConversationLink, *, at: datetime, sla_minutes: int) -> list[str]:
    """Record a public reply to the customer on `link` (not saved); returns changed fields."""
    fields = ["waiting_since"]
    link.waiting_since = None
    if link.first_response_at is None:
        link.first_response_at = at
        fields.append("first_response_at")
        if link.breached_at is None and is_breached(link, sla_minutes, at):
            link.breached_at = at
            fields.append("breached_at")
            metrics.SLA_BREACHES.inc()
    return fields


def breaches_scan(*, now: datetime | None = None) -> int:
    """Flag open conversations whose first response is overdue; alert once per breach.

    Each connection's breaches are flagged and their alert recorded in one transaction,
    then posted: a run killed before the post leaves the alert to the monitor's next run.
    """
    now = now or timezone.now()
    report: list[str] = []
    recorded = []
    total = 0
    connections = ChatwootConnection.objects.filter(active=True).select_related("tenant")
    for connection in connections.only("id", "name", "sla_minutes", "tenant__slug"):
        cutoff = now - timedelta(minutes=connection.sla_minutes)
        with transaction.atomic():
            overdue = list(
                ChatwootConversationLink.objects.select_for_update(skip_locked=True).filter(
                    connection=connection,
                    status=ChatwootStatus.OPEN,
                    first_response_at__isnull=True,
                    breached_at__isnull=True,
                    first_customer_message_at__lt=cutoff,
                )[:500]
            )
            if not overdue:
                continue
            for link in overdue:
                link.breached_at = now
            ChatwootConversationLink.objects.bulk_update(overdue, ["breached_at"])
            recorded.append(
                alert_record(
                    kind="sla_breach",
                    tenant_id=connection.tenant_id,
                    text=_breach_alert_text(connection, overdue),
                )
            )
        total += len(overdue)
        metrics.SLA_BREACHES.inc(len(overdue))
        report.extend(
            f"{now.isoformat()} {connection.tenant.slug}/{connection.name}: "
            f"#{link.chatwoot_conversation_id} ({link.contact_name or 'customer'}) first "
            f"message {link.first_customer_message_at.isoformat()}, no first response within "
            f"SLA {connection.sla_minutes} min"
            for link in overdue
        )
    _breach_report_append(now, report)
    for alert in recorded:
        alert_deliver(alert)
    return total


def _breach_alert_text(connection: ChatwootConnection, links: list) -> str:
    names = ", ".join(
        f"#{link.chatwoot_conversation_id} ({link.contact_name or 'customer'})"
        for link in links[:10]
    )
    more = f" and {len(links) - 10} more" if len(links) > 10 else ""
    return (
        f"SLA breach in {connection.tenant.slug}/{connection.name}: {len(links)} "
        f"conversation(s) waited past their first-response SLA without a reply: "
        f"{names}{more}. Escalate and respond ASAP."
    )


def _breach_report_append(now: datetime, lines: list[str]) -> None:
    """The day's SLA breach report, next to the health log in the support evidence folder
    (artifacts/support/YYYY-MM-DD/sla-breaches.log)."""
    if not lines:
        return
    day = now.astimezone(UTC).strftime("%Y-%m-%d")
    path = Path(settings.SUPPORT_EVIDENCE_DIR) / day / "sla-breaches.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as report:
            # One line per breach: names come from Chatwoot (what a customer typed), and a
            # line break in one would add lines of its own to the evidence.
            report.write("\n".join(" ".join(line.split()) for line in lines) + "\n")
    except OSError as exc:
        log.warning("support.sla_report_failed", path=str(path), error=str(exc))
