"""Support-side data retention (beat, hourly, one task per tenant; see tasks.py).

Past the tenant's `pii_retention_days`: raw webhook deliveries (Chatwoot payloads with the
customer's name, email and words) are deleted, since nothing reads a processed one again;
closed approval items keep their row (status, timings, confidence, for the queue's counts)
but have emails and phone numbers redacted from their texts, like webchat messages;
conversation links keep their SLA clock but lose the contact's name.

Operational rows are kept for SUPPORT_RECORDS_RETENTION_DAYS: health checks (except each
connection's latest check and latest failure, which the support page shows), sent alerts
and done retries (queued and given-up ones are on the page and stay).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from core.batches import delete_batch, delete_in_batches, update_batch
from support.models import (
    ApprovalItem,
    ApprovalStatus,
    ChatwootConnection,
    ChatwootConversationLink,
    HealthCheck,
    OutboundRetry,
    RetryStatus,
    SupportAlert,
    WebhookDelivery,
)
from tenants.models import Tenant
from tenants.retention import RetentionMarks
from webchat.rollups import RETENTION_BATCH_SIZE, redact

# Items still being worked on keep their texts: an agent may yet approve and send one.
_CLOSED_APPROVAL_STATUSES = (
    ApprovalStatus.SENT,
    ApprovalStatus.REJECTED,
    ApprovalStatus.SUPERSEDED,
)
_APPROVAL_TEXTS = ("customer_text", "draft_text", "final_text", "reject_reason")


def support_data_purge(
    *,
    tenant: Tenant,
    now: datetime | None = None,
    batch_size: int = RETENTION_BATCH_SIZE,
    max_batches: int | None = None,
) -> dict[str, int]:
    """Remove or redact a tenant's support data past its retention periods; what it did,
    by kind. Batched like `visitor_data_purge`; a second run changes and counts nothing.
    The kinds past the tenant's period start where the last run that finished them got
    to (tenants.retention); the operational records, bounded by their fixed window, are
    looked at whole."""
    in_batches = {"size": batch_size, "max_batches": max_batches}
    with RetentionMarks(tenant=tenant, now=now) as marks:
        deliveries = WebhookDelivery.objects.filter(tenant=tenant)
        deleted_deliveries = marks.purge(
            "webhook_deliveries",
            deliveries.only("pk"),
            clock="created_at",
            each=lambda batch: delete_batch(batch, deliveries),
            **in_batches,
        )
        named_links = ChatwootConversationLink.objects.filter(tenant=tenant).exclude(
            contact_name=""
        )
        # Every write of a name also writes updated_at (the clock): a link named again
        # after it was blanked comes due again a period later.
        links = marks.purge(
            "conversation_links",
            named_links.only("pk"),
            clock="updated_at",
            each=lambda batch: update_batch(batch, named_links, contact_name=""),
            **in_batches,
        )
        closed_items = ApprovalItem.objects.filter(
            tenant=tenant, status__in=_CLOSED_APPROVAL_STATUSES, anonymized_at__isnull=True
        )
        approvals = marks.purge(
            "approval_items",
            closed_items.only("id", *_APPROVAL_TEXTS),
            clock="received_at",
            each=lambda batch: _approval_items_redact(batch, now=now or marks.stamp),
            # An item comes due when it is decided, which may be long after it arrived,
            # and received_at is Chatwoot's time (a late delivery lands behind the mark).
            resweep=True,
            **in_batches,
        )
    records_cutoff = (now or timezone.now()) - timedelta(
        days=settings.SUPPORT_RECORDS_RETENTION_DAYS
    )
    health_checks = delete_in_batches(
        HealthCheck.objects.filter(tenant=tenant, created_at__lt=records_cutoff).exclude(
            pk__in=_health_checks_shown(tenant)
        ),
        **in_batches,
    )
    alerts = delete_in_batches(
        SupportAlert.objects.filter(tenant=tenant, created_at__lt=records_cutoff), **in_batches
    )
    retries = delete_in_batches(
        OutboundRetry.objects.filter(tenant=tenant, status=RetryStatus.DONE).filter(
            Q(done_at__lt=records_cutoff) | Q(done_at__isnull=True, updated_at__lt=records_cutoff)
        ),
        **in_batches,
    )
    return {
        "webhook_deliveries": deleted_deliveries,
        "conversation_links": links,
        "approval_items": approvals,
        "health_checks": health_checks,
        "alerts": alerts,
        "retries": retries,
    }


def _approval_items_redact(batch: list[ApprovalItem], *, now: datetime) -> int:
    for item in batch:
        for name in _APPROVAL_TEXTS:
            setattr(item, name, redact(getattr(item, name)))
        item.anonymized_at = now
    ApprovalItem.objects.bulk_update(batch, [*_APPROVAL_TEXTS, "anonymized_at"])
    return len(batch)


def _health_checks_shown(tenant: Tenant) -> list[int]:
    """Each connection's latest check and latest failure (the support page shows both)."""
    checks = HealthCheck.objects.filter(connection=OuterRef("pk")).order_by("-created_at", "-id")
    rows = (
        ChatwootConnection.objects.filter(tenant=tenant)
        .annotate(
            last=Subquery(checks.values("id")[:1]),
            last_failed=Subquery(checks.exclude(exit_code=0).values("id")[:1]),
        )
        .values_list("last", "last_failed")
    )
    return [pk for row in rows for pk in row if pk is not None]
