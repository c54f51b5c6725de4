"""Alerts to a Slack-compatible incoming webhook (`{"text": ...}`).

`alert_send` never raises into its caller: a broken alert channel must not break a health
check or the monitor. Every alert is also recorded as a SupportAlert row (suppressed ones
too, e.g. during a maintenance window).
"""

from __future__ import annotations

import structlog
from django.conf import settings
from django.core.cache import cache

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
        full = alert_text(level=level, text=text)
        alert = SupportAlert.objects.create(
            tenant_id=tenant_id, kind=kind, level=level, text=full, suppressed=suppressed
        )
        if suppressed:
            metrics.ALERTS.labels(kind, "suppressed").inc()
            return alert
        url = settings.SUPPORT_ALERT_WEBHOOK_URL
        if not url:
            metrics.ALERTS.labels(kind, "not_configured").inc()
            return alert
        error = webhook_text_post(
            url=url, text=full, timeout=ALERT_TIMEOUT_SECONDS, sender="support"
        )
        alert.error = error or ""
        alert.delivered = error is None
        alert.save(update_fields=["delivered", "error", "updated_at"])
        metrics.ALERTS.labels(kind, "sent" if alert.delivered else "failed").inc()
        if alert.error:
            log.warning("support.alert_failed", kind=kind, error=alert.error)
        return alert
    except Exception:
        log.exception("support.alert_error", kind=kind)
        return None
