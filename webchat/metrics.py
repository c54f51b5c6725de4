from django.db import transaction
from prometheus_client import Counter

SESSIONS = Counter(
    "replybase_webchat_sessions_total", "Webchat sessions started or resumed", ["resumed"]
)
MESSAGES = Counter("replybase_webchat_messages_total", "Webchat messages stored", ["direction"])


def outbound_stored(conversation) -> None:
    """Count a reply stored in a web conversation (bot, AI, fallback or agent), once its
    transaction commits."""
    if conversation.channel == "web":
        transaction.on_commit(MESSAGES.labels("outbound").inc)


EVENTS = Counter("replybase_webchat_events_total", "Widget telemetry events accepted", ["type"])
RATE_LIMITED = Counter(
    "replybase_webchat_rate_limited_total", "Requests refused by a rate limit", ["route", "scope"]
)
ORIGIN_DENIED = Counter(
    "replybase_webchat_origin_denied_total",
    "Requests from origins a site does not allow",
    ["route"],
)
TOKEN_FAILURES = Counter(
    "replybase_webchat_token_failures_total", "Refused session tokens or challenges", ["reason"]
)
DISABLED = Counter(
    "replybase_webchat_disabled_total", "Requests refused by the rollout decision", ["reason"]
)
