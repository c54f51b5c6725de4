"""Operator alerts: one JSON POST `{"text": ...}` to a Slack-compatible incoming webhook.

`alert_send` never raises into its caller: a failed delivery is logged and reported as
False. Callers inside a transaction queue it with `transaction.on_commit`.
"""

import httpx
import structlog
from django.conf import settings

log = structlog.get_logger(__name__)


def alert_send(*, text: str) -> bool:
    url = settings.ROLLOUT_ALERT_WEBHOOK_URL
    if not url:
        log.info("rollout.alert.skipped", reason="no ROLLOUT_ALERT_WEBHOOK_URL", text=text)
        return False
    try:
        response = httpx.post(
            url,
            json={"text": text},
            timeout=settings.ROLLOUT_ALERT_TIMEOUT_SECONDS,
            headers={"User-Agent": "ReplyBase-rollout/1"},
        )
        response.raise_for_status()
    except Exception as exc:  # any failure: log it, never break the demotion that alerted
        log.warning("rollout.alert.failed", error=f"{type(exc).__name__}: {exc}", text=text)
        return False
    log.info("rollout.alert.sent", text=text)
    return True
