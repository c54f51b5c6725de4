"""Reads for the tenant dashboard's webchat pages (`/integrations/webchat`).

Every function takes the tenant (or a site already fetched with the tenant filter) and
queries a fixed number of times however many sites the tenant has: the list page groups
its counts by site instead of asking once per site.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import Http404
from django.utils import timezone

from bots.models import KnowledgeArticle
from crm.models import Message
from rollout.selectors import Decision, webchat_allowed
from tenants.models import Tenant
from webchat.models import EventType, WebChatEvent, WebChatSession, WebChatSite
from webchat.origins import origin_allowed

LIVE_WINDOW = timedelta(minutes=15)
# "Recent successful init": a visitor started or resumed a session this recently.
INIT_RECENT_WINDOW = timedelta(days=7)
INCIDENT_WINDOW = timedelta(hours=24)
INCIDENT_EXAMPLES = 5
LAST_EVENTS = 25
WCAG_AA = 4.5
DARK_TEXT = "#111111"  # what the widget puts on light brand colours (contrast.js)
HEX_COLOR_RE = re.compile(r"^#[0-9a-f]{6}$")


# --- sites ----------------------------------------------------------------------------------


def site_get_for_tenant(*, tenant: Tenant, site_id: int) -> WebChatSite:
    """The tenant's site or 404 (another tenant's looks exactly like a missing one)."""
    site = WebChatSite.objects.select_related("bot").filter(tenant=tenant, pk=site_id).first()
    if site is None:
        raise Http404("No such site.")
    return site


def site_list_for_tenant(*, tenant: Tenant) -> list[WebChatSite]:
    return list(WebChatSite.objects.filter(tenant=tenant).select_related("bot").order_by("name"))


# --- colour contrast (mirrors webchat/widget/src/contrast.js) --------------------------------


def _luminance(color: str) -> float:
    value = int(color[1:], 16)
    channels = []
    for shift in (16, 8, 0):
        c = ((value >> shift) & 255) / 255
        channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@dataclass(frozen=True)
class ContrastReport:
    color: str
    with_white: float  # contrast of white text on the colour
    text_color: str  # what the widget will use: white when it reaches 4.5:1, else dark
    with_text: float
    warning: str  # empty when white text reads well

    @property
    def ok(self) -> bool:
        return not self.warning


def color_contrast(color: str) -> ContrastReport | None:
    """WCAG contrast of the widget's header/launcher text on `color` (`#rrggbb`)."""
    color = (color or "").strip().lower()
    if not HEX_COLOR_RE.match(color):
        return None
    white = contrast_ratio(color, "#ffffff")
    text = "#ffffff" if white >= WCAG_AA else DARK_TEXT
    with_text = white if text == "#ffffff" else contrast_ratio(color, DARK_TEXT)
    warning = ""
    if white < WCAG_AA:
        warning = (
            f"White text on {color} has a contrast of {white:.1f}:1, below the WCAG AA minimum "
            f"of {WCAG_AA}:1, so the widget will use dark text on it."
        )
        if with_text < WCAG_AA:
            warning += (
                f" Dark text only reaches {with_text:.1f}:1 either: pick a darker or lighter shade."
            )
    return ContrastReport(color, round(white, 2), text, round(with_text, 2), warning)


# --- readiness, traffic and status -----------------------------------------------------------


@dataclass(frozen=True)
class Check:
    key: str
    label: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Traffic:
    sessions: int = 0
    messages: int = 0
    events: int = 0

    @property
    def any(self) -> bool:
        return bool(self.sessions or self.messages or self.events)


@dataclass
class SiteStatus:
    site: WebChatSite
    decision: Decision
    traffic: Traffic
    checks: list[Check] = field(default_factory=list)
    last_init_at: datetime | None = None

    @property
    def ready_count(self) -> int:
        return sum(1 for c in self.checks if c.ok)

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def _checks(
    *,
    site: WebChatSite,
    decision: Decision,
    published_articles: int,
    last_init_at: datetime | None,
    now: datetime,
) -> list[Check]:
    domains = list(site.allowed_domains or [])
    recent = last_init_at is not None and now - last_init_at <= INIT_RECENT_WINDOW
    return [
        Check(
            "domains",
            "Allowed domains set",
            bool(domains),
            f"{len(domains)} rule(s): {', '.join(domains[:3])}{'…' if len(domains) > 3 else ''}"
            if domains
            else "No website may embed the widget until you list its domain.",
        ),
        Check(
            "bot",
            "Bot configured",
            site.bot_id is not None,
            f"Answers with “{site.bot.name}”."
            if site.bot_id
            else "Choose a bot, or visitors get no automatic answers.",
        ),
        Check(
            "knowledge",
            "Knowledge base not empty",
            published_articles > 0,
            f"{published_articles} published article(s)."
            if published_articles
            else "Publish at least one article so the bot can answer questions.",
        ),
        Check(
            "rollout",
            "Rollout allows traffic",
            decision.allowed and site.active,
            ("Allowed" if decision.allowed else "Blocked")
            + f" by the rollout policy ({decision.reason})."
            + ("" if site.active else " The site itself is switched off."),
        ),
        Check(
            "init",
            "Recent successful init",
            recent,
            f"Last visitor session started or resumed {timezone.localtime(last_init_at):%Y-%m-%d %H:%M}."
            if last_init_at
            else "No visitor session yet: open the test harness or a page with the snippet.",
        ),
    ]


def _last_init_by_site(site_ids: list[int]) -> dict[int, datetime]:
    # `session_start` saves the row on create and on resume (updated_at); message polls
    # only bump last_seen_at with update(), so updated_at is the last successful init.
    # The newest row of each site through (site, -updated_at): not a MAX over all of a
    # busy site's sessions.
    newest = WebChatSession.objects.filter(site_id=OuterRef("pk")).order_by("-updated_at")
    rows = (
        WebChatSite.objects.filter(pk__in=site_ids)
        .annotate(last=Subquery(newest.values("updated_at")[:1]))
        .values_list("pk", "last")
    )
    return {site_id: last for site_id, last in rows if last is not None}


def _traffic_by_site(*, tenant: Tenant, site_ids: list[int], since: datetime) -> dict[int, Traffic]:
    sessions = dict(
        WebChatSession.objects.filter(tenant=tenant, site_id__in=site_ids, last_seen_at__gte=since)
        .values("site_id")
        .annotate(n=Count("id"))
        .values_list("site_id", "n")
    )
    messages = dict(
        Message.objects.filter(
            tenant=tenant,
            created_at__gte=since,
            conversation__webchat_sessions__site_id__in=site_ids,
        )
        .values("conversation__webchat_sessions__site_id")
        .annotate(n=Count("id", distinct=True))
        .values_list("conversation__webchat_sessions__site_id", "n")
    )
    events = dict(
        WebChatEvent.objects.filter(tenant=tenant, site_id__in=site_ids, created_at__gte=since)
        .values("site_id")
        .annotate(n=Count("id"))
        .values_list("site_id", "n")
    )
    return {
        pk: Traffic(sessions.get(pk, 0), messages.get(pk, 0), events.get(pk, 0)) for pk in site_ids
    }


def published_article_count(*, tenant: Tenant) -> int:
    return KnowledgeArticle.objects.filter(tenant=tenant, published=True).count()


def site_status_list(*, tenant: Tenant) -> list[SiteStatus]:
    """Every site of the tenant with its rollout decision, live traffic and readiness.

    A fixed number of queries for any number of sites (plus the rollout decisions, which
    `webchat_allowed` caches per site).
    """
    sites = site_list_for_tenant(tenant=tenant)
    if not sites:
        return []
    now = timezone.now()
    ids = [s.pk for s in sites]
    traffic = _traffic_by_site(tenant=tenant, site_ids=ids, since=now - LIVE_WINDOW)
    last_init = _last_init_by_site(ids)
    articles = published_article_count(tenant=tenant)
    statuses = []
    for site in sites:
        decision = webchat_allowed(site)
        statuses.append(
            SiteStatus(
                site=site,
                decision=decision,
                traffic=traffic[site.pk],
                last_init_at=last_init.get(site.pk),
                checks=_checks(
                    site=site,
                    decision=decision,
                    published_articles=articles,
                    last_init_at=last_init.get(site.pk),
                    now=now,
                ),
            )
        )
    return statuses


def site_status_get(*, site: WebChatSite) -> SiteStatus:
    now = timezone.now()
    decision = webchat_allowed(site)
    last_init = _last_init_by_site([site.pk]).get(site.pk)
    return SiteStatus(
        site=site,
        decision=decision,
        traffic=_traffic_by_site(tenant=site.tenant, site_ids=[site.pk], since=now - LIVE_WINDOW)[
            site.pk
        ],
        last_init_at=last_init,
        checks=_checks(
            site=site,
            decision=decision,
            published_articles=published_article_count(tenant=site.tenant),
            last_init_at=last_init,
            now=now,
        ),
    )


# --- diagnostics ------------------------------------------------------------------------------

INCIDENT_GROUPS = {
    "blocked_origins": ("Blocked origins", [EventType.ORIGIN_DENIED]),
    "token_failures": (
        "Token and challenge failures",
        [EventType.TOKEN_INVALID, EventType.CHALLENGE_INVALID],
    ),
    "rate_limits": ("Rate-limit hits", [EventType.RATE_LIMITED]),
}


@dataclass(frozen=True)
class IncidentGroup:
    key: str
    label: str
    count: int
    examples: list[WebChatEvent]


@dataclass(frozen=True)
class Diagnostics:
    status: SiteStatus
    incidents: list[IncidentGroup]
    last_events: list[WebChatEvent]
    window: timedelta


def event_details(event: WebChatEvent) -> list[tuple[str, str]]:
    """What the Details column shows of an event: its telemetry `data` (what the widget
    sent), or the whole payload of an incident, as (name, value) pairs. Prepared here, not
    looked up in the template: a visitor's data may hold any key, and `items` there
    would hide the dict's own items()."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    shown = payload.get("data") if isinstance(payload.get("data"), dict) else payload
    return [
        (str(name), value if isinstance(value, str) else json.dumps(value, default=str))
        for name, value in shown.items()
    ]


def site_diagnostics(*, site: WebChatSite) -> Diagnostics:
    since = timezone.now() - INCIDENT_WINDOW
    events = WebChatEvent.objects.filter(tenant_id=site.tenant_id, site=site)
    counts = events.filter(created_at__gte=since).aggregate(
        **{
            key: Count("id", filter=Q(type__in=types))
            for key, (_label, types) in INCIDENT_GROUPS.items()
        }
    )
    incidents = []
    for key, (label, types) in INCIDENT_GROUPS.items():
        examples = list(
            events.filter(type__in=types, created_at__gte=since).order_by("-created_at", "-id")[
                :INCIDENT_EXAMPLES
            ]
        )
        incidents.append(IncidentGroup(key, label, counts[key] or 0, examples))
    last_events = list(events.order_by("-created_at", "-id")[:LAST_EVENTS])
    for event in [*last_events, *(e for group in incidents for e in group.examples)]:
        event.details = event_details(event)
    return Diagnostics(
        status=site_status_get(site=site),
        incidents=incidents,
        last_events=last_events,
        window=INCIDENT_WINDOW,
    )


# --- snippet, harness -------------------------------------------------------------------------


def loader_url(*, request) -> str:
    """The absolute, unhashed loader URL customers paste (hashed names change every deploy)."""
    return request.build_absolute_uri(settings.STATIC_URL + "webchat/loader.js")


def dashboard_origin(*, request) -> str:
    return f"{request.scheme}://{request.get_host()}".lower()


def dashboard_origin_allowed(*, site: WebChatSite, request) -> bool:
    return origin_allowed(
        dashboard_origin(request=request),
        list(site.allowed_domains or []),
        allow_any=settings.WEBCHAT_ALLOW_ANY_ORIGIN,
    )
