"""The minute-by-minute monitor (a beat task): SLA breaches, queue-depth alerts, gauges,
and deliveries a lost task left unprocessed."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count

from support import metrics, selectors, sla, webhooks
from support.alerts import alert_send, alerts_pending_deliver
from support.models import OPEN_APPROVAL_STATUSES, ApprovalItem, OutboundRetry, RetryStatus
from tenants.models import Tenant


def _depths(qs) -> dict[int, int]:
    return {row["tenant_id"]: row["n"] for row in qs.values("tenant_id").annotate(n=Count("id"))}


def queue_alerts() -> dict[str, int]:
    """Alert (at most once per cooldown per tenant) on deep approval or retry queues."""
    approval = _depths(ApprovalItem.objects.filter(status__in=OPEN_APPROVAL_STATUSES))
    retry = _depths(OutboundRetry.objects.filter(status=RetryStatus.QUEUED))
    names = dict(Tenant.objects.filter(pk__in=[*approval, *retry]).values_list("id", "name"))
    approval_limit = settings.SUPPORT_APPROVAL_QUEUE_ALERT_DEPTH
    retry_limit = settings.SUPPORT_RETRY_QUEUE_ALERT_DEPTH
    for tenant_id, depth in approval.items():
        if depth > approval_limit:
            alert_send(
                kind="approval_queue_depth",
                tenant_id=tenant_id,
                cooldown_key=f"approval-depth:{tenant_id}",
                text=f"Approval queue depth is {depth} for {names.get(tenant_id)} (alert above "
                f"{approval_limit}): drafts are waiting for a human to approve them.",
            )
    for tenant_id, depth in retry.items():
        if depth > retry_limit:
            alert_send(
                kind="retry_queue_depth",
                tenant_id=tenant_id,
                cooldown_key=f"retry-depth:{tenant_id}",
                text=f"Chatwoot retry queue depth is {depth} for {names.get(tenant_id)} (alert "
                f"above {retry_limit}): calls to Chatwoot keep failing; check the connection "
                "and webhook processing (runbook level 3).",
            )
    total_approval, total_retry = sum(approval.values()), sum(retry.values())
    metrics.APPROVAL_QUEUE_DEPTH.set(total_approval)
    metrics.RETRY_QUEUE_DEPTH.set(total_retry)
    return {"approval_queue": total_approval, "retry_queue": total_retry}


def gauges_refresh() -> None:
    overview = selectors.sla_overview(tenant=None, escalations=0)
    for level, count in overview.counts.items():
        metrics.SLA_CONVERSATIONS.labels(level).set(count)
    metrics.SLA_BREACH_RATE.set(overview.breach_rate or 0.0)


def monitor_run() -> dict:
    alerts_pending_deliver()  # left by a run killed before it posted them
    breaches = sla.breaches_scan()
    depths = queue_alerts()
    gauges_refresh()
    reprocessed = webhooks.deliveries_reprocess()
    return {"breaches": breaches, "reprocessed": reprocessed, **depths}
