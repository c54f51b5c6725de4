"""Alerts to a Slack-compatible incoming webhook (`{"text": ...}`).

`alert_send` never raises into its caller: a broken alert channel must not break a health
check or the monitor. Every alert is also recorded as a SupportAlert row (suppressed ones
too, e.g. during a maintenance window), before it is posted: one recorded with what it
reports (`alert_record`) and never posted, because its run was killed, is posted by the
monitor's next run (`alerts_pending_deliver`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from core.alerts import webhook_text_post
from support import metrics
from support.models import AlertLevel, SupportAlert

log = structlog.get_logger(__name__)

ALERT_TIMEOUT_SECONDS = 5.0


def alert_text(*, level: int, text: str) -> str:
    prefix = "[Level 2 · PAGE]" if level >= AlertLevel.PAGE else "[Level 1]"
    return f"{prefix} {text}"


def alert_send(
    *,
    kind: str,
    text: str,
    level: int = AlertLevel.WARNING,
    tenant_id: int | None = None,
    suppressed: bool = False,
    cooldown_key: str | None = None,
) -> SupportAlert | None:
    """Record and post one alert; with `cooldown_key`, at most one per cooldown period."""
    try:
        if cooldown_key and not cache.add(
            f"support:alert:{cooldown_key}", 1, settings.SUPPORT_ALERT_COOLDOWN_SECONDS
        ):
            metrics.ALERTS.labels(kind, "cooldown").inc()
            return None
        alert = alert_record(
            kind=kind, text=text, level=level, tenant_id=tenant_id, suppressed=suppressed
        )
        if suppressed:
            metrics.ALERTS.labels(kind, "suppressed").inc()
            return alert
    except Exception:
        log.exception("support.alert_error", kind=kind)
        return None
    return alert_deliver(alert)


def alert_record(
    *,
    kind: str,
    text: str,
    level: int = AlertLevel.WARNING,
    tenant_id: int | None = None,
    suppressed: bool = False,
) -> SupportAlert:
    """Record an alert (pending, unless suppressed): inside the transaction that commits
    what it reports, so the two are never apart. `alert_deliver` posts it after the commit."""
    return SupportAlert.objects.create(
        tenant_id=tenant_id,
        kind=kind,
        level=level,
        text=alert_text(level=level, text=text),
        suppressed=suppressed,
        pending=not suppressed,
    )


def alert_deliver(alert: SupportAlert) -> SupportAlert | None:
    """Post a pending alert, then mark it done; never raises (None on an error). Killed
    before the mark, it stays pending for `alerts_pending_deliver`: an alert may be
    posted twice, never lost."""
    try:
        url = settings.SUPPORT_ALERT_WEBHOOK_URL
        outcome = "not_configured"
        if url:
            error = webhook_text_post(
                url=url, text=alert.text, timeout=ALERT_TIMEOUT_SECONDS, sender="support"
            )
            alert.error = error or ""
            alert.delivered = error is None
            outcome = "sent" if alert.delivered else "failed"
        alert.pending = False
        alert.save(update_fields=["delivered", "error", "pending", "updated_at"])
        metrics.ALERTS.labels(alert.kind, outcome).inc()
        if alert.error:
            log.warning("support.alert_failed", kind=alert.kind, error=alert.error)
        return alert
    except Exception:
        log.exception("support.alert_error", kind=alert.kind)
        return None


# A run posts what it recorded right after its commit; older pending alerts are left over
# from a run that was killed before it could. A run takes a few of them: at most
# PENDING_BATCH posts of ALERT_TIMEOUT_SECONDS each, well inside the monitor's time limit.
PENDING_GRACE = timedelta(minutes=2)
PENDING_BATCH = 10


def alerts_pending_deliver(*, now: datetime | None = None) -> int:
    """Post the alerts a killed run recorded but never posted (oldest first); how many.
    Each is locked while it is posted, so two monitor runs never both post it."""
    cutoff = (now or timezone.now()) - PENDING_GRACE
    left = SupportAlert.objects.filter(pending=True, created_at__lt=cutoff).order_by("created_at")
    posted = 0
    for pk in left.values_list("pk", flat=True)[:PENDING_BATCH]:
        with transaction.atomic():
            alert = (
                SupportAlert.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, pending=True)
                .first()
            )
            posted += alert is not None and alert_deliver(alert) is not None
    return posted
