"""Reads for `/admin/webchat-monitoring`: the QA guide's monitoring set, per tenant and overall.

Hourly counts come from `WebChatHourlyRollup` for hours the rollup task has finished
(older than FRESH_HOURS) and from the raw rows for the latest hours, so the screen is
current without scanning a week of raw rows. Everything is aggregated for all tenants at
once: the query count does not grow with the number of tenants or sites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from crm.models import Direction, Message
from rollout.models import GateEvaluation, Stage
from rollout.selectors import (
    Decision,
    PolicySnapshot,
    TenantState,
    decide,
    gate_latest_by_tenant,
    tenant_stage,
)
from tenants.models import Tenant
from webchat.models import (
    INCIDENT_EVENT_TYPES,
    WIDGET_EVENT_TYPES,
    EventType,
    WebChatEvent,
    WebChatHourlyRollup,
    WebChatSession,
    WebChatSite,
)

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
# The rollup task recomputes the last 2 hours every 5 minutes: older hours are final.
FRESH_HOURS = 3
COUNTERS = (
    "sessions",
    "conversations",
    "messages_in",
    "messages_out",
    "widget_events",
    "error_events",
    "origin_denied",
    "token_failures",
    "rate_limited",
)
SITES_SHOWN = 100


def _hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def _zero() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


def error_rate(counts: dict[str, int]) -> float | None:
    return counts["error_events"] / counts["widget_events"] if counts["widget_events"] else None


@dataclass
class SiteReadiness:
    site: WebChatSite
    decision: Decision
    last_activity: datetime | None
    live: bool
    widget_loads: int
    errors: int
    incidents: int
    checks: list[tuple[str, bool, bool]] = field(default_factory=list)  # (label, ok, blocking)

    @property
    def status(self) -> str:
        if any(not ok and blocking for _, ok, blocking in self.checks):
            return "blocked"
        if any(not ok for _, ok, _ in self.checks):
            return "attention"
        return "ready"


@dataclass
class TenantMonitor:
    tenant: Tenant
    stage: Stage
    decision: Decision
    totals: dict[str, int]
    active_sites: int
    live_sites: int
    last_activity: datetime | None
    gate: GateEvaluation | None

    @property
    def error_rate(self) -> float | None:
        return error_rate(self.totals)

    @property
    def incidents(self) -> int:
        return (
            self.totals["origin_denied"]
            + self.totals["token_failures"]
            + self.totals["rate_limited"]
        )


@dataclass
class MonitoringReport:
    window: str
    start: datetime
    end: datetime
    hours: list[datetime]
    series: dict[str, list[int]]  # counter -> value per hour (selected tenant, or all)
    totals: dict[str, int]
    active_sites: int
    live_sites: int
    last_activity: datetime | None
    tenants: list[TenantMonitor]
    sites: list[SiteReadiness]
    sites_total: int
    selected: Tenant | None = None

    @property
    def error_rate(self) -> float | None:
        return error_rate(self.totals)

    @property
    def freshness_seconds(self) -> float | None:
        if self.last_activity is None:
            return None
        return (self.end - self.last_activity).total_seconds()


def _rollup_counts(since: datetime, until: datetime) -> dict[tuple[int, datetime], dict]:
    rows = (
        WebChatHourlyRollup.objects.filter(hour__gte=since, hour__lt=until)
        .values("tenant_id", "hour")
        .annotate(**{name: Sum(name) for name in COUNTERS})
        .order_by()
    )
    return {(row["tenant_id"], row["hour"]): {c: row[c] or 0 for c in COUNTERS} for row in rows}


def _raw_counts(since: datetime, until: datetime) -> dict[tuple[int, datetime], dict]:
    counts: dict[tuple[int, datetime], dict] = {}

    def add(rows, mapping: dict[str, str]) -> None:
        for row in rows:
            bucket = counts.setdefault((row["tenant_id"], row["hour"]), _zero())
            for counter, source in mapping.items():
                bucket[counter] += row[source] or 0

    sessions = WebChatSession.objects.filter(created_at__gte=since, created_at__lt=until)
    add(
        sessions.annotate(hour=TruncHour("created_at"))
        .values("tenant_id", "hour")
        .annotate(n=Count("id"), c=Count("conversation_id", distinct=True))
        .order_by(),
        {"sessions": "n", "conversations": "c"},
    )
    messages = Message.objects.filter(
        created_at__gte=since, created_at__lt=until, conversation__channel="web"
    )
    add(
        messages.annotate(hour=TruncHour("created_at"))
        .values("tenant_id", "hour")
        .annotate(
            i=Count("id", filter=Q(direction=Direction.INBOUND)),
            o=Count("id", filter=Q(direction=Direction.OUTBOUND)),
        )
        .order_by(),
        {"messages_in": "i", "messages_out": "o"},
    )
    events = WebChatEvent.objects.filter(created_at__gte=since, created_at__lt=until)
    add(
        events.annotate(hour=TruncHour("created_at"))
        .values("tenant_id", "hour")
        .annotate(
            w=Count("id", filter=Q(type__in=WIDGET_EVENT_TYPES)),
            e=Count("id", filter=Q(type=EventType.ERROR)),
            d=Count("id", filter=Q(type=EventType.ORIGIN_DENIED)),
            t=Count(
                "id", filter=Q(type__in=[EventType.TOKEN_INVALID, EventType.CHALLENGE_INVALID])
            ),
            r=Count("id", filter=Q(type=EventType.RATE_LIMITED)),
        )
        .order_by(),
        {
            "widget_events": "w",
            "error_events": "e",
            "origin_denied": "d",
            "token_failures": "t",
            "rate_limited": "r",
        },
    )
    return counts


def _site_activity(since: datetime) -> tuple[dict[int, datetime], dict[int, dict]]:
    """Per site: last session activity, and event counts/last event in the window."""
    last_seen = dict(
        WebChatSession.objects.filter(last_seen_at__gte=since)
        .values("site_id")
        .annotate(last=Max("last_seen_at"))
        .order_by()
        .values_list("site_id", "last")
    )
    events = {
        row["site_id"]: row
        for row in WebChatEvent.objects.filter(created_at__gte=since)
        .values("site_id")
        .annotate(
            last=Max("created_at"),
            loads=Count("id", filter=Q(type=EventType.WIDGET_LOADED)),
            widget=Count("id", filter=Q(type__in=WIDGET_EVENT_TYPES)),
            errors=Count("id", filter=Q(type=EventType.ERROR)),
            incidents=Count("id", filter=Q(type__in=INCIDENT_EVENT_TYPES)),
        )
        .order_by()
    }
    return last_seen, events


def _latest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _readiness(site, decision, last, live, activity) -> SiteReadiness:
    domains = list(site.allowed_domains or [])
    loads, widget = activity.get("loads", 0), activity.get("widget", 0)
    errors, incidents = activity.get("errors", 0), activity.get("incidents", 0)
    target = (settings.ROLLOUT_GATE_THRESHOLDS.get("error_event_rate") or {}).get("target")
    checks = [
        ("Site active", site.active, True),
        ("Allowed domains set", bool(domains) and "*" not in domains, True),
        ("Bot assigned", site.bot_id is not None, True),
        (f"Rollout allows it ({decision.reason})", decision.allowed, True),
        ("Widget seen loading", loads > 0, False),
        (
            "Error events within target",
            not widget or target is None or errors / widget <= target,
            False,
        ),
        ("Incidents fewer than widget loads", incidents <= max(loads, 0), False),
    ]
    return SiteReadiness(site, decision, last, live, loads, errors, incidents, checks)


def monitoring_report(
    *,
    policy: PolicySnapshot,
    window: str = "24h",
    tenant: Tenant | None = None,
    now: datetime | None = None,
) -> MonitoringReport:
    now = now or timezone.now()
    window = window if window in WINDOWS else "24h"
    end_hour = _hour(now) + timedelta(hours=1)
    start = end_hour - WINDOWS[window]
    hours = [
        start + timedelta(hours=i) for i in range(int(WINDOWS[window].total_seconds()) // 3600)
    ]
    fresh_from = max(start, end_hour - timedelta(hours=FRESH_HOURS))

    counts = _rollup_counts(start, fresh_from)
    counts.update(_raw_counts(fresh_from, end_hour))

    tenants = list(Tenant.objects.select_related("rollout").order_by("name"))
    sites = list(
        WebChatSite.objects.select_related("tenant", "bot").order_by("tenant__name", "name")
    )
    live_since = now - timedelta(minutes=settings.ROLLOUT_LIVE_TRAFFIC_MINUTES)
    last_seen, site_events = _site_activity(start)
    gates = gate_latest_by_tenant()
    states = {t.pk: TenantState.of(t, getattr(t, "rollout", None)) for t in tenants}

    per_tenant_totals: dict[int, dict] = {}
    series = {name: [0] * len(hours) for name in COUNTERS}
    index = {hour: i for i, hour in enumerate(hours)}
    for (tenant_id, hour), values in counts.items():
        totals = per_tenant_totals.setdefault(tenant_id, _zero())
        for name in COUNTERS:
            totals[name] += values[name]
        if (tenant is None or tenant_id == tenant.pk) and hour in index:
            for name in COUNTERS:
                series[name][index[hour]] += values[name]

    site_rows: list[SiteReadiness] = []
    per_tenant_sites: dict[int, dict] = {}
    for site in sites:
        activity = site_events.get(site.pk, {})
        last = _latest(last_seen.get(site.pk), activity.get("last"))
        live = last is not None and last >= live_since
        info = per_tenant_sites.setdefault(site.tenant_id, {"active": 0, "live": 0, "last": None})
        info["active"] += int(site.active)
        info["live"] += int(site.active and live)
        info["last"] = _latest(info["last"], last)
        if tenant is None or site.tenant_id == tenant.pk:
            decision = decide(policy, states.get(site.tenant_id), site.is_canary)
            site_rows.append(_readiness(site, decision, last, live, activity))

    monitors = []
    for t in tenants:
        info = per_tenant_sites.get(t.pk, {"active": 0, "live": 0, "last": None})
        state = states[t.pk]
        monitors.append(
            TenantMonitor(
                tenant=t,
                stage=tenant_stage(policy, state),
                decision=decide(policy, state, False),
                totals=per_tenant_totals.get(t.pk, _zero()),
                active_sites=info["active"],
                live_sites=info["live"],
                last_activity=info["last"],
                gate=gates.get(t.pk),
            )
        )
    scope = [m for m in monitors if tenant is None or m.tenant.pk == tenant.pk]
    overall = _zero()
    for monitor in scope:
        for name in COUNTERS:
            overall[name] += monitor.totals[name]
    order = {"blocked": 0, "attention": 1, "ready": 2}
    site_rows.sort(key=lambda r: (order[r.status], r.site.tenant.name, r.site.name))
    return MonitoringReport(
        window=window,
        start=start,
        end=now,
        hours=hours,
        series=series,
        totals=overall,
        active_sites=sum(m.active_sites for m in scope),
        live_sites=sum(m.live_sites for m in scope),
        last_activity=_latest(*(m.last_activity for m in scope)),
        tenants=monitors,
        sites=site_rows[:SITES_SHOWN],
        sites_total=len(site_rows),
        selected=tenant,
    )
