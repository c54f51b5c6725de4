"""Reads for `/admin/webchat-monitoring`: the QA guide's monitoring set, overall (or for
one tenant), for a page of tenants, and for the sites most in need of attention.

Hourly counts come from `WebChatHourlyRollup` for hours the rollup task has finished
(older than FRESH_HOURS) and from the raw rows for the latest hours, so the screen is
current without scanning a week of raw rows. The totals, the charts, the site counts and
the order of the site readiness list are aggregated in the database; rows are read only
for the page of tenants and the sites shown. Neither the query count nor the rows read
grow with the number of tenants or sites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import (
    Case,
    Count,
    F,
    FilteredRelation,
    FloatField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, NullIf, TruncHour
from django.utils import timezone

from crm.models import Direction, Message
from rollout.models import GateEvaluation, Stage
from rollout.selectors import (
    Decision,
    PolicySnapshot,
    TenantState,
    decide,
    site_allowed_filter,
    tenant_list,
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
TENANTS_PER_PAGE = 50


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
    tenant_page: Page  # of TenantMonitor: the page of the per-tenant table asked for
    sites: list[SiteReadiness]  # the most urgent first, at most SITES_SHOWN
    sites_total: int
    selected: Tenant | None = None

    @property
    def tenants(self) -> list[TenantMonitor]:
        return list(self.tenant_page)

    @property
    def error_rate(self) -> float | None:
        return error_rate(self.totals)

    @property
    def freshness_seconds(self) -> float | None:
        if self.last_activity is None:
            return None
        return (self.end - self.last_activity).total_seconds()


@dataclass(frozen=True)
class _Bounds:
    start: datetime
    fresh_from: datetime  # hours from here on are read from the raw rows
    end_hour: datetime
    live_since: datetime


def _add(counts: dict, key, values: dict) -> None:
    """Add the counters among `values` to `counts[key]`."""
    bucket = counts.setdefault(key, _zero())
    for name in COUNTERS:
        bucket[name] += values.get(name) or 0


def _rollup_counts(since: datetime, until: datetime, *, where: Q, by: str) -> dict:
    """Counter sums of the finished hours, by `by` ("hour" or "tenant_id")."""
    rows = (
        WebChatHourlyRollup.objects.filter(where, hour__gte=since, hour__lt=until)
        .values(by)
        .annotate(**{name: Sum(name) for name in COUNTERS})
        .order_by()
    )
    counts: dict = {}
    for row in rows:
        _add(counts, row[by], row)
    return counts


def _raw_counts(since: datetime, until: datetime, *, where: Q, by: tuple[str, ...]) -> dict:
    """Counters of the latest hours from the raw rows, by the `by` values (which include
    "hour": conversations are counted distinct per hour, as the rollups count them)."""
    counts: dict = {}

    def add(rows, mapping: dict[str, str]) -> None:
        for row in rows:
            _add(counts, tuple(row[k] for k in by), {c: row[s] for c, s in mapping.items()})

    sessions = WebChatSession.objects.filter(where, created_at__gte=since, created_at__lt=until)
    add(
        sessions.annotate(hour=TruncHour("created_at"))
        .values(*by)
        .annotate(n=Count("id"), c=Count("conversation_id", distinct=True))
        .order_by(),
        {"sessions": "n", "conversations": "c"},
    )
    messages = Message.objects.filter(
        where, created_at__gte=since, created_at__lt=until, conversation__channel="web"
    )
    add(
        messages.annotate(hour=TruncHour("created_at"))
        .values(*by)
        .annotate(
            i=Count("id", filter=Q(direction=Direction.INBOUND)),
            o=Count("id", filter=Q(direction=Direction.OUTBOUND)),
        )
        .order_by(),
        {"messages_in": "i", "messages_out": "o"},
    )
    events = WebChatEvent.objects.filter(where, created_at__gte=since, created_at__lt=until)
    add(
        events.annotate(hour=TruncHour("created_at"))
        .values(*by)
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


def _series(bounds: _Bounds, hours: list[datetime], where: Q) -> tuple[dict, dict]:
    """Counters per hour of the window and their totals (an hour's row per query)."""
    counts = _rollup_counts(bounds.start, bounds.fresh_from, where=where, by="hour")
    for (hour,), values in _raw_counts(
        bounds.fresh_from, bounds.end_hour, where=where, by=("hour",)
    ).items():
        _add(counts, hour, values)
    index = {hour: i for i, hour in enumerate(hours)}
    series = {name: [0] * len(hours) for name in COUNTERS}
    totals = _zero()
    for hour, values in counts.items():
        for name in COUNTERS:
            totals[name] += values[name]
            if hour in index:
                series[name][index[hour]] += values[name]
    return series, totals


def _tenant_totals(bounds: _Bounds, tenant_ids: list[int]) -> dict[int, dict]:
    where = Q(tenant_id__in=tenant_ids)
    totals = _rollup_counts(bounds.start, bounds.fresh_from, where=where, by="tenant_id")
    for (tenant_id, _), values in _raw_counts(
        bounds.fresh_from, bounds.end_hour, where=where, by=("tenant_id", "hour")
    ).items():
        _add(totals, tenant_id, values)
    return totals


def _site_counts(live_since: datetime) -> dict:
    """Aggregates for `WebChatSite`: all, active, and active with a visitor seen or an
    event since `live_since`."""
    live = Q(pk__in=WebChatSession.objects.filter(last_seen_at__gte=live_since).values("site_id"))
    live |= Q(pk__in=WebChatEvent.objects.filter(created_at__gte=live_since).values("site_id"))
    return {
        "n_sites": Count("id"),
        "n_active": Count("id", filter=Q(active=True)),
        "n_live": Count("id", filter=Q(active=True) & live),
    }


def _last_activity(since: datetime, where: Q, *, by_tenant: bool = False):
    """The last visitor seen or event since `since`: overall, or by tenant id."""
    sessions = WebChatSession.objects.filter(where, last_seen_at__gte=since)
    events = WebChatEvent.objects.filter(where, created_at__gte=since)
    if not by_tenant:
        return _latest(
            sessions.aggregate(last=Max("last_seen_at"))["last"],
            events.aggregate(last=Max("created_at"))["last"],
        )
    last: dict[int, datetime | None] = {}
    for rows in (
        sessions.values("tenant_id").annotate(last=Max("last_seen_at")).order_by(),
        events.values("tenant_id").annotate(last=Max("created_at")).order_by(),
    ):
        for row in rows:
            last[row["tenant_id"]] = _latest(last.get(row["tenant_id"]), row["last"])
    return last


def _latest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _readiness(site, decision, last, live, activity) -> SiteReadiness:
    domains = list(site.allowed_domains or [])
    loads, widget = activity.get("loads", 0), activity.get("widget", 0)
    errors, incidents = activity.get("errors", 0), activity.get("incidents", 0)
    target = _error_target()
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


def _error_target() -> float | None:
    return (settings.ROLLOUT_GATE_THRESHOLDS.get("error_event_rate") or {}).get("target")


def _urgency(policy: PolicySnapshot) -> Case:
    """`SiteReadiness.status` in SQL, as a rank: 0 blocked, 1 attention, 2 ready. Over the
    window's event counts annotated as loads, widget, errors and incidents."""
    blocked = (
        Q(active=False)
        | Q(allowed_domains=[])
        | Q(allowed_domains__contains=["*"])
        | Q(bot__isnull=True)
        | ~site_allowed_filter(policy)
    )
    attention = Q(loads=0) | Q(incidents__gt=F("loads"))
    target = _error_target()
    if target is not None:
        attention |= Q(error_rate__gt=target)
    return Case(When(blocked, then=Value(0)), When(attention, then=Value(1)), default=Value(2))


def _site_readiness(
    *, policy: PolicySnapshot, bounds: _Bounds, where: Q, limit: int
) -> list[SiteReadiness]:
    """The `limit` sites most in need of attention (blocked, attention, ready; then by
    tenant and name), ranked in the database over every site in scope."""

    def recent(types) -> Count:
        return Count("recent__id", filter=Q(recent__type__in=list(types)))

    sites = list(
        WebChatSite.objects.filter(where)
        .annotate(
            recent=FilteredRelation("events", condition=Q(events__created_at__gte=bounds.start))
        )
        .annotate(
            loads=recent([EventType.WIDGET_LOADED]),
            widget=recent(WIDGET_EVENT_TYPES),
            errors=recent([EventType.ERROR]),
            incidents=recent(INCIDENT_EVENT_TYPES),
            last_event=Max("recent__created_at"),
        )
        .annotate(
            error_rate=Cast("errors", FloatField()) / NullIf(Cast("widget", FloatField()), 0.0)
        )
        .annotate(urgency=_urgency(policy))
        .select_related("tenant__rollout", "bot")
        .order_by("urgency", "tenant__name", "name", "pk")[:limit]
    )
    if not sites:
        return []
    last_seen = dict(
        WebChatSession.objects.filter(
            site_id__in=[s.pk for s in sites], last_seen_at__gte=bounds.start
        )
        .values("site_id")
        .annotate(last=Max("last_seen_at"))
        .order_by()
        .values_list("site_id", "last")
    )
    rows = []
    for site in sites:
        last = _latest(last_seen.get(site.pk), site.last_event)
        live = last is not None and last >= bounds.live_since
        state = TenantState.of(site.tenant, getattr(site.tenant, "rollout", None))
        activity = {
            "loads": site.loads,
            "widget": site.widget,
            "errors": site.errors,
            "incidents": site.incidents,
        }
        rows.append(_readiness(site, decide(policy, state, site.is_canary), last, live, activity))
    return rows


def _place(tenants: QuerySet[Tenant], tenant: Tenant) -> dict:
    """How many `tenants` there are, whether `tenant` is one, and how many come before it
    by name (one query)."""
    return tenants.aggregate(
        total=Count("pk"),
        found=Count("pk", filter=Q(pk=tenant.pk)),
        before=Count("pk", filter=Q(name__lt=tenant.name) | Q(name=tenant.name, pk__lt=tenant.pk)),
    )


def _tenant_page(
    *,
    policy: PolicySnapshot,
    bounds: _Bounds,
    tenants: QuerySet[Tenant],
    number,
    per_page: int,
    selected: Tenant | None,
) -> Page:
    tenants = tenants.order_by("name", "pk")
    # the newest gate evaluation of each: an index probe on (tenant, -id) per row fetched
    newest = GateEvaluation.objects.filter(tenant_id=OuterRef("pk")).order_by("-id")
    paginator = Paginator(
        tenants.select_related("rollout").annotate(gate_id=Subquery(newest.values("id")[:1])),
        per_page,
    )
    if number is None and selected is not None:
        place = _place(tenants, selected)
        paginator.count = place["total"]  # known now: the paginator need not count again
        if place["found"]:
            number = place["before"] // per_page + 1
    page = paginator.get_page(number)
    shown = list(page)
    ids = [t.pk for t in shown]
    if not ids:
        return page
    totals = _tenant_totals(bounds, ids)
    sites = {
        row["tenant_id"]: row
        for row in WebChatSite.objects.filter(tenant_id__in=ids)
        .values("tenant_id")
        .annotate(**_site_counts(bounds.live_since))
        .order_by()
    }
    last = _last_activity(bounds.start, Q(tenant_id__in=ids), by_tenant=True)
    gates = GateEvaluation.objects.in_bulk([t.gate_id for t in shown if t.gate_id is not None])
    monitors = []
    for t in shown:
        state = TenantState.of(t, getattr(t, "rollout", None))
        counts = sites.get(t.pk, {"n_active": 0, "n_live": 0})
        monitors.append(
            TenantMonitor(
                tenant=t,
                stage=tenant_stage(policy, state),
                decision=decide(policy, state, False),
                totals=totals.get(t.pk, _zero()),
                active_sites=counts["n_active"],
                live_sites=counts["n_live"],
                last_activity=last.get(t.pk),
                gate=gates.get(t.gate_id),
            )
        )
    return Page(monitors, page.number, paginator)


def monitoring_report(
    *,
    policy: PolicySnapshot,
    window: str = "24h",
    tenant: Tenant | None = None,
    tenants: QuerySet[Tenant] | None = None,
    page: int | str | None = None,
    per_page: int = TENANTS_PER_PAGE,
    now: datetime | None = None,
) -> MonitoringReport:
    """The monitoring set over `window`, for every tenant or the `tenant` chosen, with the
    `page` of the per-tenant table (`tenants`, every tenant by default; by name) and the
    sites most in need of attention. With a tenant chosen and no page asked for, the
    table opens on the page that tenant is on."""
    now = now or timezone.now()
    window = window if window in WINDOWS else "24h"
    end_hour = _hour(now) + timedelta(hours=1)
    start = end_hour - WINDOWS[window]
    hours = [
        start + timedelta(hours=i) for i in range(int(WINDOWS[window].total_seconds()) // 3600)
    ]
    # live: last activity in the window recent enough
    live_since = now - timedelta(minutes=settings.ROLLOUT_LIVE_TRAFFIC_MINUTES)
    bounds = _Bounds(
        start=start,
        fresh_from=max(start, end_hour - timedelta(hours=FRESH_HOURS)),
        end_hour=end_hour,
        live_since=max(start, live_since),
    )
    where = Q() if tenant is None else Q(tenant_id=tenant.pk)
    series, totals = _series(bounds, hours, where)
    sites = WebChatSite.objects.filter(where).aggregate(**_site_counts(bounds.live_since))
    return MonitoringReport(
        window=window,
        start=start,
        end=now,
        hours=hours,
        series=series,
        totals=totals,
        active_sites=sites["n_active"],
        live_sites=sites["n_live"],
        last_activity=_last_activity(start, where),
        tenant_page=_tenant_page(
            policy=policy,
            bounds=bounds,
            tenants=tenant_list() if tenants is None else tenants,
            number=page,
            per_page=per_page,
            selected=tenant,
        ),
        sites=_site_readiness(policy=policy, bounds=bounds, where=where, limit=SITES_SHOWN),
        sites_total=sites["n_sites"],
        selected=tenant,
    )
