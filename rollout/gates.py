"""SLO gates: per-tenant quality measured from the raw rows over a window.

Sample size is the number of inbound visitor messages in the window; below
`ROLLOUT_GATE_MIN_MESSAGES` the gate is "insufficient" (promotion holds, nothing is
demoted). Each metric has a *target* (needed to pass, i.e. to promote) and a *hard* limit
(breaching it with enough samples fails the gate, which demotes the tenant):

- error_event_rate: widget `error` events ÷ widget telemetry events, of sessions (a token)
- message_success_rate: visitor messages older than the reply grace that got a reply
- ai_fallback_rate: bot AI replies with outcome fallback|timeout|error ÷ all AI replies
- p95_reply_seconds: p95 of the time from a visitor message to the next outbound message in
  the same conversation
- origin_denied_rate / token_failure_rate / rate_limited_rate: incidents per session active
  in the window; advisory (`ADVISORY_METRICS`): a breach warns, never fails

A metric with nothing to measure is "n/a" and judges nothing (no AI replies, telemetry
turned off), except the replies themselves: without a visitor message old enough to
judge its reply (`REQUIRED_METRICS`), the gate is "insufficient" however many messages
came in, never a pass.

All tenants are measured together in four aggregate queries (plus four per tenant whose
stage changed inside the window: gates measure the current stage only), and one more finds
the tenants that went quiet since their last judged evaluation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    Subquery,
)
from django.utils import timezone

from crm.models import Direction, Message, SenderType
from rollout.models import GateEvaluation, GateStatus, TenantRollout
from tenants.models import Tenant
from webchat.models import WIDGET_EVENT_TYPES, EventType, WebChatEvent, WebChatSession

LOWER, HIGHER = "lower", "higher"
GATE_SPECS: dict[str, tuple[str, str]] = {
    "error_event_rate": (LOWER, "Error events ÷ widget events"),
    "message_success_rate": (HIGHER, "Visitor messages that got a reply"),
    "ai_fallback_rate": (LOWER, "AI replies that fell back"),
    "p95_reply_seconds": (LOWER, "p95 visitor message → reply (s)"),
    "origin_denied_rate": (LOWER, "Blocked origins per session"),
    "token_failure_rate": (LOWER, "Token/challenge failures per session"),
    "rate_limited_rate": (LOWER, "Rate-limit hits per session"),
}
# Without a value for these, a gate cannot pass (it is insufficient, see the docstring).
REQUIRED_METRICS = ("message_success_rate",)
# Fed by requests refused before any session was proven: anyone who knows a site key can
# raise them from any origin. Breaching their hard limit holds promotion (the gate warns,
# the check shows the breach) but never fails the gate, which would switch a tenant off
# for an outsider.
ADVISORY_METRICS = ("origin_denied_rate", "token_failure_rate", "rate_limited_rate")
AI_OUTCOMES = ("answered", "fallback", "timeout", "error")
AI_FALLBACK_OUTCOMES = ("fallback", "timeout", "error")


class Percentile95(Aggregate):
    """PostgreSQL's percentile_cont(0.95) over an interval, in seconds."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM %(expressions)s))"
    output_field = FloatField()


def percentile(values: list[float], fraction: float = 0.95) -> float | None:
    """Linear interpolation between closest ranks (what percentile_cont does)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class TenantMetrics:
    messages_in: int = 0  # inbound visitor messages in the window: the sample size
    messages_due: int = 0  # ... of which older than the reply grace
    messages_replied: int = 0  # ... of which got a reply
    p95_reply_seconds: float | None = None
    ai_replies: int = 0
    ai_fallbacks: int = 0
    sessions: int = 0
    widget_events: int = 0
    error_events: int = 0
    origin_denied: int = 0
    token_failures: int = 0
    rate_limited: int = 0

    def values(self) -> dict[str, float | None]:
        incidents_base = self.sessions or None
        return {
            "error_event_rate": _ratio(self.error_events, self.widget_events),
            "message_success_rate": _ratio(self.messages_replied, self.messages_due),
            "ai_fallback_rate": _ratio(self.ai_fallbacks, self.ai_replies),
            "p95_reply_seconds": (
                None if self.p95_reply_seconds is None else round(self.p95_reply_seconds, 3)
            ),
            "origin_denied_rate": _incident_rate(self.origin_denied, incidents_base),
            "token_failure_rate": _incident_rate(self.token_failures, incidents_base),
            "rate_limited_rate": _incident_rate(self.rate_limited, incidents_base),
        }


def _incident_rate(count: int, sessions: int | None) -> float | None:
    if not count:
        return 0.0 if sessions else None
    # Incidents with no session at all still count: as many per session as there were.
    return round(count / (sessions or 1), 4)


def _messages_in(since: datetime, until: datetime, tenant_ids: list[int] | None):
    inbound = Message.objects.filter(
        direction=Direction.INBOUND,
        sender_type=SenderType.VISITOR,
        conversation__channel="web",
        created_at__gte=since,
        created_at__lt=until,
    )
    if tenant_ids is not None:
        inbound = inbound.filter(tenant_id__in=tenant_ids)
    next_reply = (
        Message.objects.filter(
            conversation_id=OuterRef("conversation_id"),
            id__gt=OuterRef("id"),
            direction=Direction.OUTBOUND,
        )
        .order_by("id")
        .values("created_at")[:1]
    )
    return inbound.annotate(reply_at=Subquery(next_reply))


def metrics_by_tenant(
    *, since: datetime, until: datetime, tenant_ids: list[int] | None = None
) -> dict[int, TenantMetrics]:
    """Gate metrics of every tenant with any activity in [since, until)."""
    result: dict[int, TenantMetrics] = {}

    def bucket(tenant_id: int) -> TenantMetrics:
        return result.setdefault(tenant_id, TenantMetrics())

    due_before = until - timedelta(seconds=settings.ROLLOUT_GATE_REPLY_GRACE_SECONDS)
    inbound = _messages_in(since, until, tenant_ids)
    replied = Q(reply_at__isnull=False)
    counts = {
        "total": Count("id"),
        "due": Count("id", filter=Q(created_at__lt=due_before)),
        "replied": Count("id", filter=Q(created_at__lt=due_before) & replied),
    }
    on_postgres = connection.vendor == "postgresql"
    if on_postgres:
        counts["p95"] = Percentile95(
            ExpressionWrapper(F("reply_at") - F("created_at"), output_field=DurationField()),
            filter=replied,
        )
    for row in inbound.values("tenant_id").annotate(**counts).order_by():
        metrics = bucket(row["tenant_id"])
        metrics.messages_in = row["total"]
        metrics.messages_due = row["due"]
        metrics.messages_replied = row["replied"]
        if on_postgres:
            metrics.p95_reply_seconds = row["p95"]
    if not on_postgres:  # SQLite (embedded mode): the percentile in Python
        latencies: dict[int, list[float]] = {}
        for tenant_id, created_at, reply_at in inbound.filter(replied).values_list(
            "tenant_id", "created_at", "reply_at"
        ):
            if isinstance(reply_at, str):  # SQLite hands the subquery back as text
                reply_at = datetime.fromisoformat(reply_at)
                if timezone.is_naive(reply_at):
                    reply_at = reply_at.replace(tzinfo=UTC)
            latencies.setdefault(tenant_id, []).append((reply_at - created_at).total_seconds())
        for tenant_id, values in latencies.items():
            bucket(tenant_id).p95_reply_seconds = percentile(values)

    outbound = Message.objects.filter(
        direction=Direction.OUTBOUND,
        conversation__channel="web",
        created_at__gte=since,
        created_at__lt=until,
        metadata__ai_outcome__in=AI_OUTCOMES,
    )
    if tenant_ids is not None:
        outbound = outbound.filter(tenant_id__in=tenant_ids)
    for row in (
        outbound.values("tenant_id")
        .annotate(
            ai=Count("id"),
            fallback=Count("id", filter=Q(metadata__ai_outcome__in=AI_FALLBACK_OUTCOMES)),
        )
        .order_by()
    ):
        metrics = bucket(row["tenant_id"])
        metrics.ai_replies, metrics.ai_fallbacks = row["ai"], row["fallback"]

    events = WebChatEvent.objects.filter(created_at__gte=since, created_at__lt=until)
    # Sessions active in the window (a returning visitor's resumed session too), not only
    # the ones it created: incidents per session are not inflated by returning visitors.
    sessions = WebChatSession.objects.filter(last_seen_at__gte=since, created_at__lt=until)
    if tenant_ids is not None:
        events = events.filter(tenant_id__in=tenant_ids)
        sessions = sessions.filter(tenant_id__in=tenant_ids)
    for row in (
        events.values("tenant_id")
        .annotate(
            # widget telemetry of real sessions only: without a token anyone could post
            # error events for a site and fail its gate
            widget=Count("id", filter=Q(type__in=WIDGET_EVENT_TYPES, session__isnull=False)),
            errors=Count("id", filter=Q(type=EventType.ERROR, session__isnull=False)),
            denied=Count("id", filter=Q(type=EventType.ORIGIN_DENIED)),
            tokens=Count(
                "id", filter=Q(type__in=[EventType.TOKEN_INVALID, EventType.CHALLENGE_INVALID])
            ),
            limited=Count("id", filter=Q(type=EventType.RATE_LIMITED)),
        )
        .order_by()
    ):
        metrics = bucket(row["tenant_id"])
        metrics.widget_events, metrics.error_events = row["widget"], row["errors"]
        metrics.origin_denied, metrics.token_failures = row["denied"], row["tokens"]
        metrics.rate_limited = row["limited"]
    for row in sessions.values("tenant_id").annotate(n=Count("id")).order_by():
        bucket(row["tenant_id"]).sessions = row["n"]
    return result


@dataclass
class Check:
    metric: str
    label: str
    value: float | None
    target: float | None
    hard: float | None
    better: str
    level: str  # pass | warn | fail | n/a


@dataclass
class GateResult:
    tenant_id: int
    status: str
    samples: int
    min_samples: int
    window_start: datetime
    window_end: datetime
    metrics: TenantMetrics = field(default_factory=TenantMetrics)
    checks: list[Check] = field(default_factory=list)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.level in ("warn", "fail")]

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "samples": self.samples,
            "min_samples": self.min_samples,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "counts": asdict(self.metrics),
            "values": self.metrics.values(),
            "checks": [asdict(c) for c in self.checks],
        }

    def summary(self) -> str:
        if self.status == GateStatus.INSUFFICIENT:
            if self.samples < self.min_samples:
                return f"insufficient data ({self.samples}/{self.min_samples} messages)"
            missing = [
                c.metric for c in self.checks if c.metric in REQUIRED_METRICS and c.value is None
            ]
            return f"insufficient data (no value yet for {', '.join(missing)})"
        parts = [
            f"{c.metric}={c.value} ({'hard limit' if c.level == 'fail' else 'target'} "
            f"{c.hard if c.level == 'fail' else c.target})"
            for c in self.failures
        ]
        return f"{self.status}: " + ("; ".join(parts) if parts else "all gates pass")


def _breaches(value: float, limit: float | None, better: str) -> bool:
    if limit is None:
        return False
    return value > limit if better == LOWER else value < limit


def evaluate(
    metrics: TenantMetrics,
    *,
    tenant_id: int,
    window_start: datetime,
    window_end: datetime,
    thresholds: dict | None = None,
    min_samples: int | None = None,
) -> GateResult:
    thresholds = thresholds if thresholds is not None else settings.ROLLOUT_GATE_THRESHOLDS
    min_samples = settings.ROLLOUT_GATE_MIN_MESSAGES if min_samples is None else min_samples
    values = metrics.values()
    checks = []
    for metric, (better, label) in GATE_SPECS.items():
        limits = thresholds.get(metric) or {}
        target, hard = limits.get("target"), limits.get("hard")
        value = values[metric]
        if value is None or (target is None and hard is None):
            level = "n/a"
        elif _breaches(value, hard, better):
            level = "fail"
        elif _breaches(value, target, better):
            level = "warn"
        else:
            level = "pass"
        checks.append(Check(metric, label, value, target, hard, better, level))
    levels = {c.level for c in checks}
    failing = {c.metric for c in checks if c.level == "fail"}
    if metrics.messages_in < min_samples:
        status = GateStatus.INSUFFICIENT
    elif failing - set(ADVISORY_METRICS):
        status = GateStatus.FAIL
    elif any(values[metric] is None for metric in REQUIRED_METRICS):
        status = GateStatus.INSUFFICIENT
    elif "warn" in levels or failing:
        status = GateStatus.WARN
    else:
        status = GateStatus.PASS
    return GateResult(
        tenant_id=tenant_id,
        status=str(status),
        samples=metrics.messages_in,
        min_samples=min_samples,
        window_start=window_start,
        window_end=window_end,
        metrics=metrics,
        checks=checks,
    )


def gate_results(
    *, now: datetime | None = None, tenant_ids: list[int] | None = None
) -> dict[int, GateResult]:
    """Gate results of the given tenants (None: every tenant with activity in the window,
    and every one whose latest stored evaluation judged something).

    A tenant whose stage changed inside the window is measured from that change on.
    """
    now = now or timezone.now()
    window_start = now - timedelta(hours=settings.ROLLOUT_GATE_WINDOW_HOURS)
    metrics = metrics_by_tenant(since=window_start, until=now, tenant_ids=tenant_ids)
    starts = dict.fromkeys(tenant_ids or metrics, window_start)
    if tenant_ids is None:
        # Gone quiet since their last judged evaluation: measured again (insufficient), so
        # no screen or gauge keeps showing an old pass or fail as current.
        since = now - timedelta(days=settings.ROLLOUT_GATE_HISTORY_DAYS)
        for tenant_id in _last_judged(since=since):
            starts.setdefault(tenant_id, window_start)
    recent_changes = TenantRollout.objects.filter(gate_since__gt=window_start, gate_since__lt=now)
    if tenant_ids is not None:
        recent_changes = recent_changes.filter(tenant_id__in=tenant_ids)
    for tenant_id, since in recent_changes.values_list("tenant_id", "gate_since"):
        if tenant_id in starts:
            starts[tenant_id] = since
            own = metrics_by_tenant(since=since, until=now, tenant_ids=[tenant_id])
            metrics[tenant_id] = own.get(tenant_id, TenantMetrics())
    return {
        tenant_id: evaluate(
            metrics.get(tenant_id, TenantMetrics()),
            tenant_id=tenant_id,
            window_start=start,
            window_end=now,
        )
        for tenant_id, start in starts.items()
    }


def _last_judged(*, since: datetime) -> list[int]:
    """Tenants whose latest evaluation is from `since` on and judged something (was not
    insufficient). One index probe per tenant on (tenant, -id): not a subquery per
    evaluation row of the whole history window (millions of rows with thousands of
    tenants)."""
    latest = GateEvaluation.objects.filter(tenant_id=OuterRef("pk")).order_by("-id")
    return list(
        Tenant.objects.annotate(
            latest_status=Subquery(latest.values("status")[:1]),
            latest_at=Subquery(latest.values("created_at")[:1]),
        )
        .filter(latest_at__gte=since)
        .exclude(latest_status=GateStatus.INSUFFICIENT)
        .order_by()
        .values_list("pk", flat=True)
    )


def gate_result_for_tenant(*, tenant_id: int, now: datetime | None = None) -> GateResult:
    return gate_results(now=now, tenant_ids=[tenant_id])[tenant_id]


def overall_metrics(results: dict[int, GateResult]) -> dict:
    """All tenants together (for policy-level audit snapshots)."""
    total = TenantMetrics()
    replies: list[float] = []
    for result in results.values():
        for name, value in asdict(result.metrics).items():
            if name != "p95_reply_seconds":
                setattr(total, name, getattr(total, name) + value)
        if result.metrics.p95_reply_seconds is not None:
            replies.append(result.metrics.p95_reply_seconds)
    # The exact overall p95 would need every latency; the worst tenant p95 is the safe bound.
    total.p95_reply_seconds = max(replies) if replies else None
    return {"counts": asdict(total), "values": total.values()}
