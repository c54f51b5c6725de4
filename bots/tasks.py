"""Thin Celery wrappers over bots.services."""

from celery import shared_task
from django.db import OperationalError

from bots.selectors import message_get_for_ai_reply
from bots.services import ai_reply_deliver

# The engine itself is cut off after the bot's ai_timeout_seconds (at most 60 s); these
# limits only stop a task that is stuck somewhere else (e.g. on a database lock).
AI_REPLY_SOFT_TIME_LIMIT = 80
AI_REPLY_TIME_LIMIT = 90


@shared_task(
    acks_late=True,
    soft_time_limit=AI_REPLY_SOFT_TIME_LIMIT,
    time_limit=AI_REPLY_TIME_LIMIT,
    autoretry_for=(OperationalError,),
    max_retries=3,
    retry_backoff=1,
    retry_backoff_max=8,
    retry_jitter=True,
)
def ai_reply(message_id: int) -> None:
    """Answer the visitor message `message_id` with the bot's AI engine (idempotent)."""
    message = message_get_for_ai_reply(message_id=message_id)
    if message is not None:
        ai_reply_deliver(message=message)
