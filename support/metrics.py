"""Prometheus metrics of the Chatwoot support integration (exposed at /metrics).

Gauges use `multiprocess_mode="mostrecent"`: the monitor task (a Celery worker) and the
dashboard pages both set them, and the newest value is the truth.
"""

from prometheus_client import Counter, Gauge, Histogram

HEALTH_CHECKS = Counter(
    "replybase_support_health_checks_total",
    "Chatwoot health check runs by exit code (0 ok, 1 config, 2 platform, 3 API, 4 all)",
    ["exit_code", "expected"],
)
HEALTH_RESPONSE = Histogram(
    "replybase_support_health_response_seconds",
    "Response time of each health probe (target < 0.5 s)",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
WEBHOOKS = Counter(
    "replybase_support_webhooks_total",
    "Chatwoot webhook deliveries by result (accepted, duplicate, invalid_signature, ...)",
    ["result"],
)
WEBHOOK_ACK = Histogram(
    "replybase_support_webhook_ack_seconds",
    "Time to acknowledge a webhook delivery (target well under 0.1 s)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
WEBHOOK_PROCESSING = Histogram(
    "replybase_support_webhook_processing_seconds",
    "From receiving a delivery to having processed it (target < 3 s)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60),
)
WEBHOOK_EVENTS = Counter(
    "replybase_support_webhook_events_total",
    "Processed deliveries by what they meant (customer_message, agent_reply, ignored:...)",
    ["outcome"],
)
DRAFTS = Counter(
    "replybase_support_drafts_total", "AI drafts computed, by engine outcome", ["outcome"]
)
APPROVALS = Counter("replybase_support_approvals_total", "Human decisions on drafts", ["decision"])
OUTBOUND = Counter(
    "replybase_support_chatwoot_calls_total",
    "Calls to the Chatwoot API by operation and final result",
    ["operation", "result"],
)
OUTBOUND_RETRIES = Counter(
    "replybase_support_chatwoot_retries_total",
    "Backoff retries of Chatwoot API calls",
    ["operation"],
)
RETRY_QUEUED = Counter(
    "replybase_support_retry_queued_total",
    "Operations parked in the retry queue after their backoff retries",
    ["operation"],
)
ALERTS = Counter("replybase_support_alerts_total", "Alerts by kind and result", ["kind", "result"])
SLA_BREACHES = Counter(
    "replybase_support_sla_breaches_total", "Conversations that breached their first-response SLA"
)
APPROVAL_QUEUE_DEPTH = Gauge(
    "replybase_support_approval_queue_depth",
    "Drafts waiting for approval (alert above 25)",
    multiprocess_mode="mostrecent",
)
RETRY_QUEUE_DEPTH = Gauge(
    "replybase_support_retry_queue_depth",
    "Chatwoot operations waiting in the retry queue (alert above 50)",
    multiprocess_mode="mostrecent",
)
SLA_CONVERSATIONS = Gauge(
    "replybase_support_sla_conversations",
    "Open conversations waiting for a first response, by SLA level",
    ["level"],
    multiprocess_mode="mostrecent",
)
SLA_BREACH_RATE = Gauge(
    "replybase_support_sla_breach_rate",
    "Share of conversations of the last 7 days that breached their SLA (target < 0.05)",
    multiprocess_mode="mostrecent",
)
DRAFT_PIPELINE = Histogram(
    "replybase_support_draft_pipeline_seconds",
    "From a customer message being processed to its draft posted as a private note",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30),
)
