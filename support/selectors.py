"""Reads of the support app; everything that serves a request is scoped by tenant."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import (
    Avg,
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Cast
from django.shortcuts import get_object_or_404
from django.utils import timezone

from support.models import (
    OPEN_APPROVAL_STATUSES,
    ApprovalItem,
    ApprovalStatus,
    ChatwootConnection,
    ChatwootConversationLink,
    ChatwootStatus,
    HealthCheck,
    OutboundRetry,
    RetryStatus,
    SupportAlert,
    WebhookDelivery,
)
from support.sla import URGENT_AT, WARNING_AT, Level, deadline, level_at
from tenants.models import Tenant

BREACH_RATE_DAYS = 7


def connection_get_for_webhook(*, token: str) -> ChatwootConnection | None:
    if not token or len(token) > 64:
        return None
    return ChatwootConnection.objects.filter(webhook_token=token, active=True).first()


def connection_list(*, tenant: Tenant) -> QuerySet[ChatwootConnection]:
    return ChatwootConnection.objects.filter(tenant=tenant).order_by("name", "id")


# --- approval queue ------------------------------------------------------------------------


def approval_item_list(*, tenant: Tenant, status: str | None = None) -> QuerySet[ApprovalItem]:
    """Waiting items most urgent first (the SLA deadline, then arrival); decided ones (and
    all) the latest first."""
    qs = ApprovalItem.objects.filter(tenant=tenant).select_related(
        "link", "connection", "decided_by"
    )
    if status == "open":
        return qs.filter(status__in=OPEN_APPROVAL_STATUSES).order_by("due_at", "id")
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-received_at", "-id")


APPROVAL_PAGE_SIZE = 100


@dataclass
class ApprovalPage:
    items: list[ApprovalItem]
    previous_before: int | None  # `before` for the page before this one (None: none)
    next_after: int | None  # `after` for the page after this one (None: none)
    first: bool  # nothing comes before this page


def _sort_field(status: str | None) -> str:
    """The time `approval_item_list` orders by (then by id): ascending for open items."""
    return "due_at" if status == "open" else "received_at"


def _beyond(status: str | None, key: tuple[datetime, int], *, later: bool) -> Q:
    """The items after (`later`) or before `key` (sort time, id) in `approval_item_list`
    order."""
    field, (at, pk) = _sort_field(status), key
    way = "gt" if later == (status == "open") else "lt"
    return Q(**{f"{field}__{way}": at}) | Q(**{field: at, f"pk__{way}": pk})


def approval_item_page(
    *,
    tenant: Tenant,
    status: str | None = None,
    after: int | None = None,
    before: int | None = None,
    size: int = APPROVAL_PAGE_SIZE,
) -> ApprovalPage:
    """A page of `approval_item_list`, by keyset: the `size` items right after the item
    `after` (or right before the item `before`) in the list's order.

    A cursor is an item id, of any status: the last row a page showed may have been
    decided since, and the next page still starts right after where it stood, so deciding
    items never moves an unseen one onto a page already passed (as an offset would). An
    id that is not the tenant's (missing, another tenant's) gives the first page. A page
    before that would reach the start is the first page (full again when rows on it were
    decided).
    """
    qs = approval_item_list(tenant=tenant, status=status)
    cursor = after if after is not None else before
    key = None
    if cursor is not None:
        key = (
            ApprovalItem.objects.filter(tenant=tenant, pk=cursor)
            .values_list(_sort_field(status), "pk")
            .first()
        )
    if key is not None and after is None:
        rows = list(qs.filter(_beyond(status, key, later=False)).reverse()[: size + 1])
        if len(rows) > size:
            items = rows[:size][::-1]
            later = qs.exclude(_beyond(status, key, later=False)).exists()
            return ApprovalPage(
                items=items,
                previous_before=items[0].pk,
                next_after=items[-1].pk if later else None,
                first=False,
            )
        key = None  # it reaches the start: the first page
    if key is None:
        rows = list(qs[: size + 1])
        earlier = False
    else:
        rows = list(qs.filter(_beyond(status, key, later=True))[: size + 1])
        earlier = qs.exclude(_beyond(status, key, later=True)).exists()
    items = rows[:size]
    return ApprovalPage(
        items=items,
        previous_before=items[0].pk if earlier and items else None,
        next_after=items[-1].pk if len(rows) > size else None,
        first=not earlier,
    )


def approval_item_get(*, tenant: Tenant, item_id: int) -> ApprovalItem:
    """The tenant's item or 404 (another tenant's looks exactly like a missing one)."""
    return get_object_or_404(
        ApprovalItem.objects.select_related("link", "connection", "decided_by"),
        tenant=tenant,
        pk=item_id,
    )


def approval_queue_depth(*, tenant: Tenant | None = None) -> int:
    qs = ApprovalItem.objects.filter(status__in=OPEN_APPROVAL_STATUSES)
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    return qs.count()


def retry_queue_depth(*, tenant: Tenant | None = None) -> int:
    qs = OutboundRetry.objects.filter(status=RetryStatus.QUEUED)
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    return qs.count()


def retry_list(*, tenant: Tenant, limit: int = 20) -> list[OutboundRetry]:
    return list(
        OutboundRetry.objects.filter(tenant=tenant)
        .exclude(status=RetryStatus.DONE)
        .select_related("connection")
        .order_by("next_attempt_at")[:limit]
    )


def retry_state_for_items(*, tenant: Tenant, item_ids: list[int]) -> dict[int, OutboundRetry]:
    """Open retry rows of these approval items (note or reply), by item id."""
    rows = OutboundRetry.objects.filter(
        tenant=tenant, object_id__in=item_ids, operation__in=["private_note", "reply"]
    ).exclude(status=RetryStatus.DONE)
    return {row.object_id: row for row in rows}


# --- health ------------------------------------------------------------------------------------


@dataclass
class HealthSummary:
    connection: ChatwootConnection
    checks: int = 0
    passed: int = 0
    expected_failures: int = 0
    avg_platform_ms: float | None = None
    avg_api_ms: float | None = None
    avg_webhook_ms: float | None = None  # received → processed (runbook target: < 3 s)
    last_check: HealthCheck | None = None
    last_failure: HealthCheck | None = None
    maintenance_now: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        return None if not self.checks else self.passed / self.checks


def health_summaries(
    *, tenant: Tenant, hours: int = 24, now: datetime | None = None
) -> list[HealthSummary]:
    """Per connection over the last `hours`: success rate (maintenance-window runs left
    out), mean response time per endpoint, mean webhook processing time, the last check
    and the last failure."""
    from support.health import connection_warnings

    now = now or timezone.now()
    since = now - timedelta(hours=hours)
    recent = Q(health_checks__created_at__gte=since)
    counted = recent & Q(health_checks__in_maintenance=False)
    connections = (
        ChatwootConnection.objects.filter(tenant=tenant)
        .prefetch_related("maintenance_windows")
        .annotate(
            n_checks=Count("health_checks", filter=counted),
            n_passed=Count("health_checks", filter=counted & Q(health_checks__exit_code=0)),
            n_expected=Count(
                "health_checks",
                filter=recent
                & Q(health_checks__in_maintenance=True)
                & ~Q(health_checks__exit_code=0),
            ),
            avg_platform=Avg("health_checks__platform_ms", filter=recent),
            avg_api=Avg("health_checks__api_ms", filter=recent),
        )
        .order_by("name", "id")
    )
    # Apart from the annotations above: a second multi-valued join would multiply counts.
    webhook_latency = {
        row["connection_id"]: row["latency"]
        for row in WebhookDelivery.objects.filter(
            tenant=tenant, valid=True, processed_at__isnull=False, created_at__gte=since
        )
        .values("connection_id")
        .annotate(
            latency=Avg(
                ExpressionWrapper(F("processed_at") - F("created_at"), output_field=DurationField())
            )
        )
    }
    connections = list(connections)
    last_check, last_failure = _last_checks(tenant=tenant, connections=connections)
    summaries = []
    for connection in connections:
        latency = webhook_latency.get(connection.pk)
        summaries.append(
            HealthSummary(
                connection=connection,
                checks=connection.n_checks,
                passed=connection.n_passed,
                expected_failures=connection.n_expected,
                avg_platform_ms=connection.avg_platform,
                avg_api_ms=connection.avg_api,
                avg_webhook_ms=None if latency is None else latency.total_seconds() * 1000,
                last_check=last_check.get(connection.pk),
                last_failure=last_failure.get(connection.pk),
                maintenance_now=any(w.covers(now) for w in connection.maintenance_windows.all()),
                warnings=connection_warnings(connection),
            )
        )
    return summaries


def _last_checks(
    *, tenant: Tenant, connections: list[ChatwootConnection]
) -> tuple[dict[int, HealthCheck], dict[int, HealthCheck]]:
    """The newest check and the newest failed check of each connection, by connection id:
    two queries however many connections (each id a LIMIT 1 on the connection's
    (connection, -created_at) index)."""
    if not connections:
        return {}, {}
    newest = HealthCheck.objects.filter(tenant=tenant, connection_id=OuterRef("pk")).order_by(
        "-created_at"
    )
    marks = list(
        ChatwootConnection.objects.filter(pk__in=[c.pk for c in connections])
        .annotate(
            check_id=Subquery(newest.values("pk")[:1]),
            failure_id=Subquery(newest.exclude(exit_code=0).values("pk")[:1]),
        )
        .values_list("pk", "check_id", "failure_id")
    )
    checks = HealthCheck.objects.in_bulk(
        [pk for _, check, failure in marks for pk in (check, failure) if pk is not None]
    )
    return (
        {pk: checks[check] for pk, check, _ in marks if check in checks},
        {pk: checks[failure] for pk, _, failure in marks if failure in checks},
    )


# --- SLA ----------------------------------------------------------------------------------------


@dataclass
class Escalation:
    link: ChatwootConversationLink
    level: Level
    due_at: datetime


@dataclass
class SlaOverview:
    counts: dict[str, int]
    escalations: list[Escalation]
    breach_rate: float | None
    conversations_7d: int
    breached_7d: int


def _waiting_links(tenant: Tenant | None) -> QuerySet[ChatwootConversationLink]:
    """Open conversations whose customer wrote and no one has answered yet, each with its
    first-response deadline (`due`: the first customer message plus its connection's SLA
    minutes), computed in the database."""
    qs = ChatwootConversationLink.objects.filter(
        status=ChatwootStatus.OPEN,
        first_response_at__isnull=True,
        first_customer_message_at__isnull=False,
    )
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    # (a plain integer: SQLite multiplies a duration by an IntegerField, not a positive one)
    minutes = Cast("connection__sla_minutes", IntegerField())
    sla = ExpressionWrapper(minutes * Value(timedelta(minutes=1)), output_field=DurationField())
    return qs.annotate(
        due=ExpressionWrapper(F("first_customer_message_at") + sla, output_field=DateTimeField())
    )


def sla_overview(
    *, tenant: Tenant | None, now: datetime | None = None, escalations: int = 10
) -> SlaOverview:
    """Open conversations waiting for a first response by level, the most urgent ones,
    and the breach rate over the last 7 days (all tenants when `tenant` is None). Counted
    in the database (the levels of `support.sla.level_at`, by deadline): what it reads does
    not grow with the conversations waiting."""
    now = now or timezone.now()
    week = now - timedelta(days=BREACH_RATE_DAYS)
    waiting = _waiting_links(tenant)
    counts = waiting.aggregate(
        breach=Count("pk", filter=Q(due__lt=now)),
        urgent=Count("pk", filter=Q(due__gte=now, due__lt=now + URGENT_AT)),
        warning=Count("pk", filter=Q(due__gte=now + URGENT_AT, due__lte=now + WARNING_AT)),
        normal=Count("pk", filter=Q(due__gt=now + WARNING_AT)),
        # overdue but not flagged by the monitor yet: counted in the breach rate too
        unflagged=Count(
            "pk",
            filter=Q(due__lt=now, breached_at__isnull=True, first_customer_message_at__gte=week),
        ),
    )
    unflagged = counts.pop("unflagged")
    # levels follow the deadline: soonest first is the most urgent first
    urgent = (
        waiting.filter(due__lte=now + WARNING_AT)
        .select_related("connection")
        .order_by("due", "first_customer_message_at", "pk")[:escalations]
        if escalations
        else []
    )
    recent = ChatwootConversationLink.objects.filter(first_customer_message_at__gte=week)
    if tenant is not None:
        recent = recent.filter(tenant=tenant)
    totals = recent.aggregate(
        total=Count("id"), breached=Count("id", filter=Q(breached_at__isnull=False))
    )
    breached = totals["breached"] + unflagged
    return SlaOverview(
        counts={level.value: counts[level.value] for level in Level},
        escalations=[_escalation(link, now) for link in urgent],
        breach_rate=breached / totals["total"] if totals["total"] else None,
        conversations_7d=totals["total"],
        breached_7d=breached,
    )


def _escalation(link: ChatwootConversationLink, now: datetime) -> Escalation:
    due = deadline(link, link.connection.sla_minutes)
    return Escalation(link=link, level=level_at(due, now), due_at=due)


def alert_list(*, tenant: Tenant, limit: int = 5) -> list[SupportAlert]:
    return list(SupportAlert.objects.filter(tenant=tenant).order_by("-created_at")[:limit])


def approval_status_counts(*, tenant: Tenant) -> dict[str, int]:
    rows = ApprovalItem.objects.filter(tenant=tenant).values("status").annotate(n=Count("id"))
    counts = dict.fromkeys(ApprovalStatus.values, 0)
    counts.update({row["status"]: row["n"] for row in rows})
    return counts
