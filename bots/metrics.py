"""Prometheus metrics of the conversation engine (exposed by core.metrics at /metrics)."""

from prometheus_client import Counter, Histogram

AI_REPLIES = Counter(
    "replybase_ai_replies_total",
    "AI replies delivered to visitors, by outcome",
    ["outcome"],
)
AI_LATENCY = Histogram(
    "replybase_ai_reply_latency_seconds",
    "Time from asking the reply engine to having its answer (or giving up)",
    ["engine"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)
AI_REPLIES_DROPPED = Counter(
    "replybase_ai_replies_dropped_total",
    "Owed AI replies given up because a conversation had more waiting than the cap "
    "(a visitor writing on while no worker keeps up)",
)
KNOWLEDGE_INDEX_BUILDS = Counter(
    "replybase_knowledge_index_builds_total",
    "Knowledge-base retrieval indexes built (cache misses)",
)


def ai_reply_observe(*, outcome: str, engine: str, latency_ms: int) -> None:
    AI_REPLIES.labels(outcome=outcome).inc()
    AI_LATENCY.labels(engine=engine).observe(latency_ms / 1000)
