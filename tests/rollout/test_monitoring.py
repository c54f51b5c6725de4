"""The monitoring report at scale: its figures come from aggregate queries, and what the
screen reads grows with the page it shows, not with the number of tenants and sites."""

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import Direction, Message
from rollout.models import GateEvaluation, Mode
from rollout.monitoring import monitoring_report
from rollout.selectors import policy_read, tenant_list
from tests.factories import BotFactory, MessageFactory, TenantFactory
from tests.factories.rollout import RolloutPolicyFactory, TenantRolloutFactory
from tests.factories.webchat import (
    WebChatEventFactory,
    WebChatSessionFactory,
    WebChatSiteFactory,
)
from tests.rollout.conftest import reads
from webchat.models import EventType, WebChatEvent, WebChatHourlyRollup, WebChatSession

pytestmark = pytest.mark.django_db

MONITORING = "/admin/webchat-monitoring"
ROLLUP = {
    "sessions": 2,
    "conversations": 2,
    "messages_in": 4,
    "messages_out": 3,
    "widget_events": 6,
    "error_events": 1,
    "origin_denied": 1,
    "token_failures": 1,
    "rate_limited": 2,
}


def activity(tenant, *, now, seen_minutes_ago: int = 2, rollup_hours_ago: int = 5):
    """A tenant with traffic: an active site with a bot (one visitor, 2 messages in and 1
    out, 3 widget events of which 1 error, 1 blocked origin, 1 bad token, all 10 minutes
    before `now`), an inactive site, and an hourly rollup `rollup_hours_ago` (ROLLUP's
    counts)."""
    site = WebChatSiteFactory(tenant=tenant, bot=BotFactory(tenant=tenant))
    WebChatSiteFactory(tenant=tenant, active=False)
    session = WebChatSessionFactory(
        site=site, last_seen_at=now - timedelta(minutes=seen_minutes_ago)
    )
    for direction in (Direction.INBOUND, Direction.INBOUND, Direction.OUTBOUND):
        MessageFactory(conversation=session.conversation, direction=direction)
    for kind in (
        EventType.WIDGET_LOADED,
        EventType.LAUNCHER_OPENED,
        EventType.ERROR,
        EventType.ORIGIN_DENIED,
        EventType.TOKEN_INVALID,
    ):
        WebChatEventFactory(session=session, type=kind)
    # one instant for all (a test crossing the hour would otherwise read one more hour)
    at = now - timedelta(minutes=10)
    WebChatEvent.objects.filter(site=site).update(created_at=at)
    Message.objects.filter(conversation=session.conversation).update(created_at=at)
    WebChatSession.objects.filter(pk=session.pk).update(created_at=at)
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=rollup_hours_ago)
    WebChatHourlyRollup.objects.create(tenant=tenant, site=site, hour=hour, **ROLLUP)
    GateEvaluation.objects.create(
        tenant=tenant, status="pass", samples=3, window_start=now, window_end=now
    )
    return site


class TestFigures:
    """Three tenants over two pages of two: the totals are over all of them, the rows of
    the table over the page shown."""

    @pytest.fixture
    def world(self):
        now = timezone.now()
        alpha = TenantFactory(name="Alpha", slug="alpha")
        bravo = TenantFactory(name="Bravo", slug="bravo")
        charlie = TenantFactory(name="Charlie", slug="charlie")
        activity(alpha, now=now)
        WebChatSiteFactory(tenant=bravo)
        quiet = activity(charlie, now=now, seen_minutes_ago=120, rollup_hours_ago=30)
        # Charlie's visitor left two hours ago: still in the live hours, no longer live
        WebChatEvent.objects.filter(site=quiet).update(created_at=now - timedelta(hours=2))
        return now, alpha, bravo, charlie

    def test_totals_are_over_every_tenant(self, world):
        now = world[0]
        report = monitoring_report(policy=policy_read(), per_page=2, now=now)
        raw = {
            "sessions": 1,
            "conversations": 1,
            "messages_in": 2,
            "messages_out": 1,
            "widget_events": 3,
            "error_events": 1,
            "origin_denied": 1,
            "token_failures": 1,
            "rate_limited": 0,
        }
        # the day: Alpha's rollup and the raw rows of both; Charlie's rollup is 30 h old
        assert report.totals == {k: ROLLUP[k] + 2 * raw[k] for k in ROLLUP}
        assert {k: sum(v) for k, v in report.series.items()} == report.totals
        assert report.error_rate == 3 / 12
        assert (report.active_sites, report.live_sites, report.sites_total) == (3, 1, 5)
        assert report.last_activity == now - timedelta(minutes=2)  # Alpha's visitor
        week = monitoring_report(policy=policy_read(), window="7d", per_page=2, now=now)
        assert week.totals == {k: 2 * ROLLUP[k] + 2 * raw[k] for k in ROLLUP}

    def test_the_table_rows_are_the_page_of_tenants(self, world):
        now, alpha, bravo, charlie = world
        first = monitoring_report(policy=policy_read(), per_page=2, now=now)
        assert first.tenant_page.paginator.count == 3
        assert [m.tenant for m in first.tenants] == [alpha, bravo]
        a, b = first.tenants
        assert a.totals["messages_in"] == ROLLUP["messages_in"] + 2
        assert a.totals["sessions"] == ROLLUP["sessions"] + 1
        assert a.incidents == (1 + 1) + (1 + 1) + 2  # origin, token, rate limit
        assert (a.active_sites, a.live_sites) == (1, 1)
        assert a.gate is not None and a.gate.status == "pass"
        assert (b.active_sites, b.live_sites, b.last_activity, b.gate) == (1, 0, None, None)
        assert all(v == 0 for v in b.totals.values())
        second = monitoring_report(policy=policy_read(), per_page=2, page="2", now=now)
        [c] = second.tenants
        assert c.tenant == charlie and (c.active_sites, c.live_sites) == (1, 0)
        assert c.totals["messages_in"] == 2  # its rollup is older than the day
        assert c.last_activity == now - timedelta(hours=2)
        assert second.totals == first.totals  # the page does not change the totals

    def test_one_tenant_chosen(self, world):
        now, _, _, charlie = world
        report = monitoring_report(policy=policy_read(), tenant=charlie, per_page=2, now=now)
        assert report.totals["messages_in"] == 2 and report.totals["sessions"] == 1
        assert (report.active_sites, report.live_sites, report.sites_total) == (1, 0, 2)
        assert report.last_activity == now - timedelta(hours=2)
        assert {r.site.tenant for r in report.sites} == {charlie}
        assert report.tenant_page.number == 2  # the page Charlie is on
        assert [m.tenant for m in report.tenants] == [charlie]

    def test_a_search_narrows_the_table_not_the_totals(self, world):
        now, _, bravo, charlie = world
        everything = monitoring_report(policy=policy_read(), per_page=2, now=now)
        found = monitoring_report(
            policy=policy_read(), tenants=tenant_list(query="AR"), per_page=2, now=now
        )
        assert [m.tenant for m in found.tenants] == [charlie]  # "chARlie", by name
        assert found.totals == everything.totals
        by_slug = monitoring_report(
            policy=policy_read(), tenants=tenant_list(query="brav"), per_page=2, now=now
        )
        assert [m.tenant for m in by_slug.tenants] == [bravo]
        none = monitoring_report(
            policy=policy_read(), tenants=tenant_list(query="%_"), per_page=2, now=now
        )
        assert none.tenant_page.paginator.count == 0 and list(none.tenants) == []


def test_site_readiness_most_urgent_first_over_every_site(monkeypatch):
    """Only the first sites are shown: they are the most urgent of all of them (blocked,
    then needing attention, then ready), whatever page of tenants is shown."""
    monkeypatch.setattr("rollout.monitoring.SITES_SHOWN", 3)
    RolloutPolicyFactory(mode=Mode.PILOT)
    now = timezone.now()
    tenants = [TenantFactory(name=f"Tenant {n:02d}") for n in range(6)]
    for tenant in tenants:
        TenantRolloutFactory(tenant=tenant, in_pilot=True)
    ready = []
    for tenant in tenants[:4]:  # ready: a bot, domains, seen loading, no errors
        site = WebChatSiteFactory(tenant=tenant, bot=BotFactory(tenant=tenant), name="Ready")
        WebChatEventFactory(session=WebChatSessionFactory(site=site), type=EventType.WIDGET_LOADED)
        ready.append(site)
    attention = WebChatSiteFactory(  # never seen loading
        tenant=tenants[5], bot=BotFactory(tenant=tenants[5]), name="Unseen"
    )
    blocked = WebChatSiteFactory(tenant=tenants[4], name="No bot")
    zed = TenantFactory(name="Zed")
    outside = WebChatSiteFactory(tenant=zed, bot=BotFactory(tenant=zed), name="Not in the pilot")
    report = monitoring_report(policy=policy_read(), per_page=2, now=now)
    assert report.sites_total == 7
    assert [(r.site, r.status) for r in report.sites] == [
        (blocked, "blocked"),
        (outside, "blocked"),
        (attention, "attention"),
    ]
    failing = [label for label, ok, blocking in report.sites[1].checks if blocking and not ok]
    assert failing == ["Rollout allows it (not_in_pilot)"]
    mine = monitoring_report(policy=policy_read(), tenant=tenants[0], now=now)
    [row] = mine.sites
    assert (row.site, row.status, row.widget_loads, row.live) == (ready[0], "ready", 1, True)


def test_what_the_screen_reads_does_not_grow_with_tenants(operator_client, monkeypatch):
    """4 tenants or 30, with the same traffic each: the same queries, the same rows read
    (a page of 2 tenants and 2 sites here, so that both fill a page)."""
    monkeypatch.setattr("rollout.views.MONITORING_TENANTS_PER_PAGE", 2)
    monkeypatch.setattr("rollout.monitoring.SITES_SHOWN", 2)
    now = timezone.now()
    tenants = [TenantFactory(name=f"Tenant {n:02d}") for n in range(4)]
    for tenant in tenants:
        activity(tenant, now=now)
        TenantRolloutFactory(tenant=tenant, in_pilot=True)
    asks = [
        {},
        {"window": "7d"},
        {"tenant": tenants[1].pk},
        {"q": "tenant", "page": "2"},
        {"q": "no such tenant"},
    ]

    def measure():
        figures = []
        for params in asks:
            with reads() as seen:
                response = operator_client.get(MONITORING, params)
            assert response.status_code == 200, params
            figures.append((seen["queries"], seen["rows"]))
        return figures

    operator_client.get(MONITORING)  # the session and the user, cached or not
    few = measure()
    for n in range(4, 30):
        tenant = TenantFactory(name=f"Tenant {n:02d}")
        activity(tenant, now=now)
        TenantRolloutFactory(tenant=tenant, in_pilot=True)
    assert measure() == few
    assert max(queries for queries, _ in few) <= 25


def test_the_databases_site_ranking_agrees_with_each_sites_checks(monkeypatch):
    """The readiness list is ordered in SQL (`_urgency`) and each row's status comes from
    its checks in Python (`_readiness`): one site failing each check in turn lands under
    the status its checks give, and the list stays blocked, then attention, then ready."""
    monkeypatch.setattr("rollout.monitoring.SITES_SHOWN", 50)
    RolloutPolicyFactory(mode=Mode.PILOT)
    now = timezone.now()

    def site(name, *, pilot=True, bot=True, events=(), **fields):
        tenant = TenantFactory(name=name)
        TenantRolloutFactory(tenant=tenant, in_pilot=pilot)
        made = WebChatSiteFactory(
            tenant=tenant, name=name, bot=BotFactory(tenant=tenant) if bot else None, **fields
        )
        session = WebChatSessionFactory(site=made)
        for type_, count in events:
            for _ in range(count):
                WebChatEventFactory(site=made, session=session, type=type_)
        return made

    seen = [(EventType.WIDGET_LOADED, 2)]
    expected = {
        site("Inactive", active=False, events=seen): "blocked",
        site("No domains", allowed_domains=[], events=seen): "blocked",
        site("Any domain", allowed_domains=["*"], events=seen): "blocked",
        site("No bot", bot=False, events=seen): "blocked",
        site("Not in the pilot", pilot=False, events=seen): "blocked",
        site("Never loaded"): "attention",
        site("Errors", events=[*seen, (EventType.ERROR, 2)]): "attention",
        site("Incidents", events=[*seen, (EventType.RATE_LIMITED, 3)]): "attention",
        site("Few errors", events=[(EventType.WIDGET_LOADED, 60), (EventType.ERROR, 1)]): "ready",
        site("Ready", events=seen): "ready",
    }
    report = monitoring_report(policy=policy_read(), now=now)
    assert {row.site: row.status for row in report.sites} == expected
    ranks = {"blocked": 0, "attention": 1, "ready": 2}
    statuses = [ranks[row.status] for row in report.sites]
    assert statuses == sorted(statuses)
