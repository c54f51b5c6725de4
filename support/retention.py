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

from core.batches import Batches, delete_in_batches, update_in_batches
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
    by kind. Batched like `visitor_data_purge`; a second run changes and counts nothing."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=tenant.pii_retention_days)
    records_cutoff = now - timedelta(days=settings.SUPPORT_RECORDS_RETENTION_DAYS)
    in_batches = {"size": batch_size, "max_batches": max_batches}
    deliveries = delete_in_batches(
        WebhookDelivery.objects.filter(tenant=tenant, created_at__lt=cutoff), **in_batches
    )
    links = update_in_batches(
        ChatwootConversationLink.objects.filter(tenant=tenant, updated_at__lt=cutoff).exclude(
            contact_name=""
        ),
        contact_name="",
        **in_batches,
    )
    approvals = _approval_items_redact(tenant=tenant, cutoff=cutoff, now=now, **in_batches)
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
        "webhook_deliveries": deliveries,
        "conversation_links": links,
        "approval_items": approvals,
        "health_checks": health_checks,
        "alerts": alerts,
        "retries": retries,
    }


def _approval_items_redact(
    *, tenant: Tenant, cutoff: datetime, now: datetime, size: int, max_batches: int | None
) -> int:
    pending = ApprovalItem.objects.filter(
        tenant=tenant,
        status__in=_CLOSED_APPROVAL_STATUSES,
        received_at__lt=cutoff,
        anonymized_at__isnull=True,
    ).only("id", *_APPROVAL_TEXTS)
    redacted = 0
    for batch in Batches(pending, size=size, max_batches=max_batches):
        for item in batch:
            for name in _APPROVAL_TEXTS:
                setattr(item, name, redact(getattr(item, name)))
            item.anonymized_at = now
        ApprovalItem.objects.bulk_update(batch, [*_APPROVAL_TEXTS, "anonymized_at"])
        redacted += len(batch)
    return redacted


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
