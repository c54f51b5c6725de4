"""Operator alerts: one JSON POST `{"text": ...}` to a Slack-compatible incoming webhook.

`alert_send` never raises into its caller: a failed delivery is logged and reported as
False. Callers inside a transaction queue it with `transaction.on_commit`.
"""

import structlog
from django.conf import settings

from core.alerts import webhook_text_post

log = structlog.get_logger(__name__)


def alert_send(*, text: str) -> bool:
    url = settings.ROLLOUT_ALERT_WEBHOOK_URL
    if not url:
        log.info("rollout.alert.skipped", reason="no ROLLOUT_ALERT_WEBHOOK_URL", text=text)
        return False
    error = webhook_text_post(
        url=url, text=text, timeout=settings.ROLLOUT_ALERT_TIMEOUT_SECONDS, sender="rollout"
    )
    if error:  # log it, never break the demotion that alerted
        log.warning("rollout.alert.failed", error=error, text=text)
        return False
    log.info("rollout.alert.sent", text=text)
    return True
