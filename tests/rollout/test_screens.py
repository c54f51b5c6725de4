"""The operator screens in the admin: access, forms (CSRF, reasons, errors), charts."""

from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.test import Client
from django.utils import timezone

from rollout import charts, services
from rollout.models import (
    AuditAction,
    AuditEntry,
    GateEvaluation,
    Mode,
    Override,
    ScheduledChange,
    TenantRollout,
)
from rollout.selectors import policy_read, tenant_state_get
from tests.factories import TenantFactory
from tests.factories.rollout import RolloutPolicyFactory, TenantRolloutFactory
from tests.factories.webchat import WebChatSiteFactory
from tests.rollout.conftest import chat, reads
from webchat.models import WebChatEvent, WebChatHourlyRollup
from webchat.rollups import rollups_refresh

pytestmark = pytest.mark.django_db

ROLLOUT = "/admin/webchat-rollout"
MONITORING = "/admin/webchat-monitoring"


def tenant_page(tenant) -> str:
    return f"{ROLLOUT}/tenants/{tenant.pk}"


class TestAccess:
    @pytest.mark.parametrize("url", [ROLLOUT, MONITORING])
    def test_anonymous_goes_to_the_admin_login(self, client, url):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")

    @pytest.mark.parametrize("url", [ROLLOUT, MONITORING])
    def test_non_staff_are_refused(self, client, owner, url):
        client.force_login(owner)  # a tenant owner is not our staff
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
        response = client.post(ROLLOUT, {"action": "kill", "reason": "let me in"})
        assert response.status_code == 302
        assert policy_read().webchat_enabled

    def test_tenant_page_refused_for_non_staff(self, client, owner, tenant):
        client.force_login(owner)
        assert client.get(tenant_page(tenant)).status_code == 302

    @pytest.mark.parametrize("url", [ROLLOUT, MONITORING])
    def test_staff_see_the_screens(self, operator_client, url, tenant, site):
        response = operator_client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert tenant.name in html
        assert "admin/base" not in html  # rendered, not raw
        assert 'id="site-name"' in html  # the admin header

    def test_staff_without_permission_view_but_cannot_change(self, client, staff_viewer, tenant):
        client.force_login(staff_viewer)
        response = client.get(ROLLOUT)
        assert response.status_code == 200
        assert "Kill webchat now" not in response.content.decode()
        assert client.post(ROLLOUT, {"action": "kill", "reason": "nope nope"}).status_code == 403
        assert client.get(tenant_page(tenant)).status_code == 200
        response = client.post(
            tenant_page(tenant), {"action": "demote", "reason": "x y z", "target": "off"}
        )
        assert response.status_code == 403
        assert policy_read().webchat_enabled and not AuditEntry.objects.exists()

    def test_csrf_is_enforced(self, operator):
        strict = Client(enforce_csrf_checks=True)
        strict.force_login(operator)
        assert strict.post(ROLLOUT, {"action": "kill", "reason": "no token"}).status_code == 403
        page = strict.get(ROLLOUT)
        token = page.cookies["csrftoken"].value
        response = strict.post(
            ROLLOUT, {"action": "kill", "reason": "with token", "csrfmiddlewaretoken": token}
        )
        assert response.status_code == 302
        assert not policy_read().webchat_enabled

    def test_unknown_tenant_is_404(self, operator_client):
        assert operator_client.get(f"{ROLLOUT}/tenants/999999").status_code == 404


class TestRolloutScreen:
    def test_shows_state_decisions_and_gates(self, operator_client, tenant, site, other_tenant):
        RolloutPolicyFactory(mode=Mode.PILOT, allowed_tiers=["enterprise"])
        TenantRolloutFactory(tenant=tenant, in_pilot=True, canary_only=True)
        TenantRolloutFactory(tenant=other_tenant, override=Override.FORCE_OFF)
        GateEvaluation.objects.create(
            tenant=tenant,
            status="warn",
            samples=140,
            window_start=timezone.now() - timedelta(hours=24),
            window_end=timezone.now(),
            result={
                "checks": [
                    {
                        "metric": "p95_reply_seconds",
                        "value": 12.5,
                        "target": 10,
                        "hard": 30,
                        "level": "warn",
                    }
                ]
            },
        )
        html = operator_client.get(ROLLOUT).content.decode()
        assert "PILOT" in html and "enterprise" in html
        assert "canary sites only" in html and "site_not_canary" in html
        assert "forced off" in html and "tenant_forced_off" in html
        assert "Below target" in html and "140 msgs" in html and "12.5 s" in html
        assert "Promote</button>" not in html  # gates do not pass: no promote button
        assert "Demote</button>" in html

    def test_promote_offered_only_when_gates_pass(self, operator_client, tenant):
        RolloutPolicyFactory(mode=Mode.PILOT)
        TenantRolloutFactory(tenant=tenant, in_pilot=True)
        GateEvaluation.objects.create(
            tenant=tenant,
            status="pass",
            samples=300,
            window_start=timezone.now(),
            window_end=timezone.now(),
        )
        assert "Promote</button>" in operator_client.get(ROLLOUT).content.decode()

    def test_policy_form_saves_with_reason_and_audits(self, operator_client, operator):
        response = operator_client.post(
            ROLLOUT,
            {
                "action": "policy",
                "mode": "pilot",
                "webchat_enabled": "on",
                "reason": "first pilot week",
            },
        )
        assert response.status_code == 302
        assert policy_read().mode == Mode.PILOT
        entry = AuditEntry.objects.get()
        assert entry.actor == operator and entry.changed == [("mode", "ga", "pilot")]
        page = operator_client.get(ROLLOUT).content.decode()
        assert "Policy saved" in page and "first pilot week" in page

    def test_an_old_policy_page_does_not_lift_a_kill_switch_pulled_since(
        self, operator_client, operator
    ):
        """A opens the page; B pulls the kill switch; A changes the mode and saves. A's
        page still shows webchat enabled, which they did not touch: it stays off."""
        form = operator_client.get(ROLLOUT).context["policy_form"]
        services.kill_switch_set(actor=operator, reason="incident 42", enabled=False)
        response = operator_client.post(
            ROLLOUT,
            {
                "action": "policy",
                "mode": "pilot",
                "webchat_enabled": "on",  # as the old page showed it
                "loaded": form["loaded"].value(),
                "reason": "first pilot week",
            },
        )
        assert response.status_code == 302
        policy = policy_read()
        assert policy.mode == Mode.PILOT and policy.webchat_enabled is False
        assert AuditEntry.objects.order_by("-id").first().changed == [("mode", "ga", "pilot")]

    def test_an_old_policy_page_cannot_undo_what_someone_else_changed_it_to(
        self, operator_client, operator
    ):
        form = operator_client.get(ROLLOUT).context["policy_form"]
        services.policy_update(actor=operator, reason="B goes to pilot", mode=Mode.PILOT)
        response = operator_client.post(
            ROLLOUT,
            {
                "action": "policy",
                "mode": "off",
                "webchat_enabled": "on",
                "loaded": form["loaded"].value(),
                "reason": "A turns it off",
            },
        )
        assert response.status_code == 400
        assert "changed mode since this page was loaded" in response.content.decode()
        assert policy_read().mode == Mode.PILOT

    def test_a_tampered_loaded_state_is_no_500(self, operator_client):
        before = policy_read()
        response = operator_client.post(
            ROLLOUT,
            {
                "action": "policy",
                "mode": "pilot",
                "allowed_tiers": ["pro"],
                "webchat_enabled": "on",
                "loaded": '{"allowed_tiers": [1, "a"], "mode": ["x"]}',
                "reason": "odd page",
            },
        )
        # what the page says it showed is not what was there: refused, nothing written
        assert response.status_code == 400
        assert "since this page was loaded" in response.content.decode()
        after = policy_read()
        assert (after.mode, after.allowed_tiers) == (before.mode, before.allowed_tiers)
        response = operator_client.post(
            ROLLOUT,
            {"action": "policy", "mode": "pilot", "loaded": "[1, 2]", "reason": "odd page"},
        )
        assert response.status_code == 400
        assert "This page is out of date" in response.content.decode()

    def test_policy_form_errors_are_shown(self, operator_client):
        response = operator_client.post(
            ROLLOUT, {"action": "policy", "mode": "sideways", "webchat_enabled": "on"}
        )
        assert response.status_code == 400
        html = response.content.decode()
        assert "Select a valid choice" in html
        assert "This field is required" in html  # the reason
        assert not AuditEntry.objects.exists()

    def test_gate_refusal_shows_as_a_form_error(self, operator_client, tenant):
        RolloutPolicyFactory(mode=Mode.PILOT)
        TenantRolloutFactory(tenant=tenant, in_pilot=True)
        response = operator_client.post(
            ROLLOUT,
            {"action": "policy", "mode": "ga", "webchat_enabled": "on", "reason": "go wide now"},
        )
        assert response.status_code == 400
        assert "on hold until the SLO gates pass" in response.content.decode()
        assert policy_read().mode == Mode.PILOT

    def test_schedule_a_policy_change(self, operator_client):
        when = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        response = operator_client.post(
            ROLLOUT,
            {
                "action": "policy",
                "mode": "off",
                "webchat_enabled": "on",
                "apply_at": when,
                "reason": "maintenance window",
            },
        )
        assert response.status_code == 302
        change = ScheduledChange.objects.get()
        assert change.changes == {"mode": "off"}
        assert policy_read().mode == Mode.GA
        html = operator_client.get(ROLLOUT).content.decode()
        assert "maintenance window" in html and "Cancel</button>" in html
        response = operator_client.post(
            ROLLOUT, {"action": "cancel_schedule", "change": change.pk, "reason": "postponed"}
        )
        assert response.status_code == 302
        change.refresh_from_db()
        assert change.status == "cancelled"

    def test_kill_and_restore(self, operator_client, widget_client):
        assert widget_client.config().status_code == 200
        response = operator_client.post(ROLLOUT, {"action": "kill", "reason": "bad release"})
        assert response.status_code == 302
        assert widget_client.config().json()["error"]["code"] == "webchat_disabled"
        assert "webchat killed" in operator_client.get(ROLLOUT).content.decode()
        operator_client.post(ROLLOUT, {"action": "restore", "reason": "fixed in 1.2.1"})
        assert widget_client.config().status_code == 200
        assert [e.action for e in AuditEntry.objects.order_by("id")] == ["kill_switch"] * 2

    def test_kill_needs_a_reason(self, operator_client):
        response = operator_client.post(ROLLOUT, {"action": "kill", "reason": ""})
        assert response.status_code == 400
        assert "This field is required" in response.content.decode()
        assert policy_read().webchat_enabled

    def test_add_to_pilot_and_demote_from_the_table(self, operator_client, tenant):
        RolloutPolicyFactory(mode=Mode.PILOT)
        response = operator_client.post(
            ROLLOUT,
            {"action": "pilot_add", "tenant": tenant.pk, "canary_only": "on", "reason": "pilot 1"},
        )
        assert response.status_code == 302
        assert tenant_state_get(tenant=tenant).canary_only
        response = operator_client.post(
            ROLLOUT, {"action": "demote", "tenant": tenant.pk, "target": "off", "reason": "errors"}
        )
        assert response.status_code == 302
        assert tenant_state_get(tenant=tenant).override == Override.FORCE_OFF

    def test_promote_refused_shows_the_gate_reason(self, operator_client, tenant):
        RolloutPolicyFactory(mode=Mode.PILOT)
        TenantRolloutFactory(tenant=tenant, in_pilot=True)
        response = operator_client.post(
            ROLLOUT, {"action": "promote", "tenant": tenant.pk, "reason": "please"}
        )
        assert response.status_code == 400
        assert "insufficient data" in response.content.decode()

    def test_bad_posts(self, operator_client):
        assert operator_client.post(ROLLOUT, {"action": "launch"}).status_code == 400
        response = operator_client.post(ROLLOUT, {"action": "promote", "reason": "no tenant"})
        assert response.status_code == 400
        assert "pick a tenant" in response.content.decode()

    def test_tenant_search_with_odd_input_is_no_500(self, operator_client, tenant):
        # PostgreSQL text cannot hold NUL: a search with one must not reach the database
        for query in ["North\x00wind", "\x00", "%_", "N" * 5000]:
            response = operator_client.get(ROLLOUT, {"q": query, "page": "abc"})
            assert response.status_code == 200, query
        shown = operator_client.get(ROLLOUT, {"q": "North\x00wind"})
        assert [row.tenant for row in shown.context["rows"]] == [tenant]

    def test_evaluate_now(self, operator_client, client, site, flow_bot):
        chat(client, site, messages=2)
        operator_client.post(ROLLOUT, {"action": "evaluate"})
        assert GateEvaluation.objects.get(tenant=site.tenant).samples == 2

    def test_query_count_does_not_grow_with_tenants(
        self, operator_client, django_assert_max_num_queries
    ):
        for _ in range(3):
            WebChatSiteFactory(tenant=TenantRolloutFactory(in_pilot=True).tenant)
        operator_client.get(ROLLOUT)
        with django_assert_max_num_queries(20) as few:
            operator_client.get(ROLLOUT)
        for _ in range(6):
            WebChatSiteFactory(tenant=TenantRolloutFactory(in_pilot=True).tenant)
        with django_assert_max_num_queries(len(few.captured_queries)):
            operator_client.get(ROLLOUT)

    def test_the_pilot_is_joined_from_the_tenant_table_not_a_list_of_every_tenant(
        self, operator_client
    ):
        """Thousands of tenants: no picker of them all; find the tenant, add it on its row."""
        from rollout.views import TENANTS_PER_PAGE as per_page

        RolloutPolicyFactory(mode=Mode.PILOT)
        tenants = [TenantFactory(name=f"Tenant {n:03d}") for n in range(per_page + 5)]
        html = operator_client.get(ROLLOUT).content.decode()
        assert 'name="tenant" required id="id_tenant"' not in html
        assert not any(t.name in html for t in tenants[per_page:])  # not on page 1
        last = tenants[-1]
        url = f"{ROLLOUT}?q={last.slug}"

        def row_of(html: str) -> str:
            row = html[html.index(f'<tr id="tenant-{last.pk}">') :]
            return row[: row.index("</tr>")]

        row = row_of(operator_client.get(url).content.decode())
        assert 'value="pilot_add"' in row and f'name="tenant" value="{last.pk}"' in row
        response = operator_client.post(url, {"action": "pilot_add", "tenant": last.pk})
        assert response.status_code == 400
        assert "Reason: This field is required." in row_of(response.content.decode())
        assert not tenant_state_get(tenant=last).in_pilot
        response = operator_client.post(
            url, {"action": "pilot_add", "tenant": last.pk, "reason": "first pilot"}
        )
        assert response.status_code == 302
        assert response["Location"] == url  # back to the search
        assert tenant_state_get(tenant=last).in_pilot
        assert 'value="pilot_add"' not in row_of(operator_client.get(url).content.decode())
        # from a page loaded before: already in the pilot
        response = operator_client.post(
            url, {"action": "pilot_add", "tenant": last.pk, "reason": "again"}
        )
        assert response.status_code == 400
        assert "Could not add to the pilot" in response.content.decode()

    def test_pilot_and_override_cards_count_in_the_database(self, operator_client):
        tenants = [TenantFactory(name=f"Pilot {n}") for n in range(6)]
        for tenant in tenants:
            TenantRolloutFactory(tenant=tenant, in_pilot=True, canary_only=tenant == tenants[0])
        TenantRolloutFactory(tenant=TenantFactory(name="Held"), override=Override.HOLD_PILOT)
        response = operator_client.get(ROLLOUT)
        html = response.content.decode()
        card = html[html.index("Pilot tenants") :]
        card = card[: card.index('<div class="rb-card">')]
        assert '<div class="rb-value">6</div>' in card
        assert "Pilot 0 (canary), Pilot 1, Pilot 2, Pilot 3, …" in card
        card = html[html.index(">Overrides<") :]
        assert '<div class="rb-value">1</div>' in card and "Held: held at pilot" in card

    def test_what_the_screen_reads_does_not_grow_with_tenants(self, operator_client, monkeypatch):
        """8 tenants or 30 (in the pilot, half with overrides, with sites): the same queries
        and rows read, with a page of 2 tenants (and 4 names on each summary card)."""
        monkeypatch.setattr("rollout.views.TENANTS_PER_PAGE", 2)

        def add(n: int) -> None:
            rollout = TenantRolloutFactory(
                tenant=TenantFactory(name=f"Tenant {n:02d}"),
                in_pilot=True,
                override=Override.HOLD_PILOT if n % 2 else Override.NONE,
            )
            WebChatSiteFactory(tenant=rollout.tenant)

        for n in range(8):
            add(n)

        def measure():
            figures = []
            for params in [{}, {"q": "tenant", "page": "2"}]:
                with reads() as seen:
                    assert operator_client.get(ROLLOUT, params).status_code == 200
                figures.append((seen["queries"], seen["rows"]))
            return figures

        operator_client.get(ROLLOUT)
        few = measure()
        for n in range(8, 30):
            add(n)
        assert measure() == few


class TestTenantPage:
    def test_settings_form_and_site_canary(self, operator_client, tenant, site):
        RolloutPolicyFactory(mode=Mode.PILOT)
        page = operator_client.get(tenant_page(tenant)).content.decode()
        assert site.name in page and "not_in_pilot" in page
        response = operator_client.post(
            tenant_page(tenant),
            {
                "action": "tenant",
                "override": "",
                "in_pilot": "on",
                "canary_only": "on",
                "reason": "start on the blog",
            },
        )
        assert response.status_code == 302
        response = operator_client.post(
            tenant_page(tenant),
            {"action": "site_canary", "site": site.pk, "is_canary": "on", "reason": "blog"},
        )
        assert response.status_code == 302
        site.refresh_from_db()
        assert site.is_canary
        page = operator_client.get(tenant_page(tenant)).content.decode()
        assert "Pilot, canary sites only" in page
        assert "start on the blog" in page and "Site canary flag" in page

    def test_an_old_tenant_page_does_not_undo_an_auto_demotion(
        self, operator_client, operator, tenant
    ):
        RolloutPolicyFactory(mode=Mode.PILOT)
        TenantRolloutFactory(tenant=tenant, in_pilot=True)
        form = operator_client.get(tenant_page(tenant)).context["tenant_form"]
        services.tenant_rollout_update(
            tenant=tenant, actor=operator, reason="gates failed", override=Override.FORCE_OFF
        )
        response = operator_client.post(
            tenant_page(tenant),
            {
                "action": "tenant",
                "override": "",  # as the old page showed it
                "in_pilot": "on",
                "canary_only": "on",
                "loaded": form["loaded"].value(),
                "reason": "start on the blog",
            },
        )
        assert response.status_code == 302
        state = tenant_state_get(tenant=tenant)
        assert state.override == Override.FORCE_OFF and state.canary_only is True

    def test_another_tenants_site_cannot_be_flagged_from_this_page(
        self, operator_client, tenant, other_tenant
    ):
        foreign = WebChatSiteFactory(tenant=other_tenant)
        response = operator_client.post(
            tenant_page(tenant),
            {"action": "site_canary", "site": foreign.pk, "is_canary": "on", "reason": "sneaky"},
        )
        assert response.status_code == 400
        foreign.refresh_from_db()
        assert not foreign.is_canary

    def test_settings_form_errors(self, operator_client, tenant):
        response = operator_client.post(
            tenant_page(tenant),
            {"action": "tenant", "override": "sideways", "apply_at": "2001-01-01T00:00"},
        )
        assert response.status_code == 400
        html = response.content.decode()
        assert "Select a valid choice" in html
        assert "Pick a time in the future" in html
        assert "This field is required" in html

    def test_nothing_to_change(self, operator_client, tenant):
        response = operator_client.post(
            tenant_page(tenant),
            {"action": "tenant", "override": "", "reason": "no-op"},
        )
        assert response.status_code == 400
        assert "Nothing would change" in response.content.decode()

    def test_schedule_a_tenant_change(self, operator_client, tenant):
        when = (timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
        operator_client.post(
            tenant_page(tenant),
            {"action": "tenant", "override": "off", "apply_at": when, "reason": "contract ends"},
        )
        change = ScheduledChange.objects.get()
        assert (change.tenant, change.changes) == (tenant, {"override": "off"})
        assert not TenantRollout.objects.filter(tenant=tenant, override="off").exists()

    def test_its_scheduled_changes_only_are_read(self, operator_client, operator, tenant):
        def schedule(for_tenant, reason: str) -> None:
            services.scheduled_change_create(
                actor=operator,
                reason=reason,
                run_at=timezone.now() + timedelta(days=1),
                target="tenant",
                tenant=for_tenant,
                changes={"override": "off"},
            )

        schedule(tenant, "contract ends")
        schedule(TenantFactory(), "someone else's")
        operator_client.get(tenant_page(tenant))
        with reads() as few:
            html = operator_client.get(tenant_page(tenant)).content.decode()
        assert "contract ends" in html and "someone else" not in html
        for n in range(10):
            schedule(TenantFactory(), f"other {n}")
        with reads() as more:
            operator_client.get(tenant_page(tenant))
        assert (more["queries"], more["rows"]) == (few["queries"], few["rows"])

    def test_demote_from_the_tenant_page(self, operator_client, tenant, alert_sink):
        from django.test import TestCase

        with TestCase.captureOnCommitCallbacks(execute=True):
            response = operator_client.post(
                tenant_page(tenant), {"action": "demote", "target": "pilot", "reason": "p95 up"}
            )
        assert response.status_code == 302
        assert tenant_state_get(tenant=tenant).override == Override.HOLD_PILOT
        assert AuditEntry.objects.get().action == AuditAction.DEMOTE
        assert "demoted full → pilot" in alert_sink.texts[0]


class TestMonitoringScreen:
    def test_empty(self, operator_client):
        response = operator_client.get(MONITORING)
        assert response.status_code == 200
        html = response.content.decode()
        assert html.count(">No data yet</text>") == 3
        assert "No tenants yet" in html and "No webchat sites yet" in html

    def test_real_traffic(self, operator_client, client, site, flow_bot, tenant):
        chat(client, site, messages=6)
        from tests.rollout.conftest import visitor

        widget = visitor(client, site)
        widget.events([{"type": "error", "data": {"message": "boom"}}])
        widget.config(origin="https://evil.test")
        response = operator_client.get(MONITORING)
        html = response.content.decode()
        assert "No data yet" not in html
        report = response.context["report"]
        assert report.totals["sessions"] == 3
        assert report.totals["messages_in"] == 6
        assert report.totals["messages_out"] == 6
        assert report.totals["widget_events"] == 2 * 2 + 1
        assert report.totals["error_events"] == 1
        assert report.totals["origin_denied"] == 1
        assert report.active_sites == 1 and report.live_sites == 1
        assert report.freshness_seconds < 60
        [row] = [m for m in report.tenants if m.tenant == tenant]
        assert row.totals["messages_in"] == 6 and row.live_sites == 1
        [site_row] = report.sites
        assert site_row.widget_loads == 2 and site_row.errors == 1
        assert site_row.status == "attention"  # 1 error in 5 widget events is over target
        assert [label for label, ok, _ in site_row.checks if not ok] == [
            "Error events within target"
        ]
        assert "<polyline" in html and "Messages in" in html

    def test_old_hours_come_from_the_rollups(self, operator_client, client, site, flow_bot):
        chat(client, site, messages=2)
        old = timezone.now() - timedelta(days=3)
        WebChatEvent.objects.update(created_at=old)
        from crm.models import Message
        from webchat.models import WebChatSession

        Message.objects.update(created_at=old)
        WebChatSession.objects.update(created_at=old)
        rollups_refresh(since=old - timedelta(hours=1), until=old + timedelta(hours=1))
        assert WebChatHourlyRollup.objects.exists()
        week = operator_client.get(MONITORING, {"window": "7d"}).context["report"]
        assert week.totals["messages_in"] == 2 and week.totals["sessions"] == 1
        assert sum(week.series["messages_in"]) == 2
        day = operator_client.get(MONITORING, {"window": "24h"}).context["report"]
        assert day.totals["messages_in"] == 0

    def test_the_per_tenant_table_is_paginated(self, operator_client):
        """Thousands of tenants: the table shows a page of them (totals stay over all);
        choosing a tenant opens the page it is on."""
        from rollout.views import MONITORING_TENANTS_PER_PAGE as per_page

        tenants = [TenantFactory(name=f"Tenant {n:03d}") for n in range(per_page + 5)]
        response = operator_client.get(MONITORING)
        html = response.content.decode()
        assert (
            html.count('<div class="rb-small"><a href="/admin/webchat-rollout/tenants/') == per_page
        )
        assert response.context["tenant_page"].paginator.count == per_page + 5
        assert "page 1 of 2" in html
        assert 'href="?page=2&amp;window=24h"' in html
        rest = operator_client.get(MONITORING, {"page": 2, "window": "24h"})
        assert [m.tenant for m in rest.context["tenant_page"]] == tenants[per_page:]
        last = tenants[-1]
        chosen = operator_client.get(MONITORING, {"tenant": last.pk})
        assert chosen.context["tenant_page"].number == 2
        assert f'href="?page=1&amp;window=24h&amp;tenant={last.pk}"' in chosen.content.decode()

    def test_the_tenant_picker_is_a_search_not_every_tenant(self, operator_client):
        """Thousands of tenants: no list of them all; a search (name or slug) narrows the
        table, whose names choose the tenant the screen shows."""
        from rollout.views import MONITORING_TENANTS_PER_PAGE as per_page

        tenants = [TenantFactory(name=f"Tenant {n:03d}") for n in range(per_page + 5)]
        html = operator_client.get(MONITORING).content.decode()
        assert '<select id="tenant"' not in html
        assert 'name="q"' in html
        assert not any(t.name in html for t in tenants[per_page:])  # not on page 1
        found = operator_client.get(MONITORING, {"q": "tenant 05", "window": "7d"})
        assert [m.tenant for m in found.context["tenant_page"]] == tenants[50:55]
        html = found.content.decode()
        assert 'value="tenant 05"' in html and "5 tenants match" in html
        assert f'href="?tenant={tenants[52].pk}&amp;window=7d&amp;q=tenant+05"' in html
        by_slug = operator_client.get(MONITORING, {"q": tenants[7].slug.upper()})
        assert tenants[7] in [m.tenant for m in by_slug.context["tenant_page"]]
        chosen = operator_client.get(MONITORING, {"tenant": tenants[52].pk, "q": "tenant 05"})
        assert chosen.context["report"].selected == tenants[52]
        html = chosen.content.decode()
        # the scope stays when the window or the search changes, and can be left
        assert f'<input type="hidden" name="tenant" value="{tenants[52].pk}">' in html
        assert 'href="?window=24h&amp;q=tenant+05">all tenants</a>' in html

    def test_pages_of_a_search_keep_it(self, operator_client):
        from rollout.views import MONITORING_TENANTS_PER_PAGE as per_page

        [TenantFactory(name=f"Acme {n:03d}") for n in range(per_page + 1)]
        TenantFactory(name="Other")
        response = operator_client.get(MONITORING, {"q": "acme"})
        html = response.content.decode()
        assert "page 1 of 2" in html and f"{per_page + 1} tenants match" in html
        assert 'href="?page=2&amp;window=24h&amp;q=acme"' in html
        rest = operator_client.get(MONITORING, {"q": "acme", "page": "2"})
        assert [m.tenant.name for m in rest.context["tenant_page"]] == [f"Acme {per_page:03d}"]

    @pytest.mark.parametrize(
        ("query", "found"),
        [
            ("North\x00wind", ["Northwind"]),  # NUL dropped by the middleware
            ("\x00", ["Northwind", "Other Co"]),
            ("   ", ["Northwind", "Other Co"]),
            ("%_", []),
            ("nORTH", ["Northwind"]),
            ("\u202enorth", []),
            ("' OR 1=1 --", []),
        ],
    )
    def test_odd_searches_are_no_500(self, operator_client, tenant, other_tenant, query, found):
        for page in ["", "abc", "-1", "99999999999999999999", "\u0661"]:
            response = operator_client.get(MONITORING, {"q": query, "page": page})
            assert response.status_code == 200, (query, page)
            assert [m.tenant.name for m in response.context["tenant_page"]] == found
        if not found:
            assert "No tenant matches" in response.content.decode()

    def test_a_search_too_long_is_a_form_error(self, operator_client, tenant, site):
        response = operator_client.get(MONITORING, {"q": "N" * 201})
        assert response.status_code == 400
        html = response.content.decode()
        assert "Ensure this value has at most 200 characters (it has 201)." in html
        assert list(response.context["tenant_page"]) == []
        assert response.context["report"].active_sites == 1  # the rest of the screen stays
        assert operator_client.get(MONITORING, {"q": "N" * 200}).status_code == 200
        response = operator_client.get(MONITORING, {"q": "N" * 20000})
        assert response.status_code == 400

    def test_one_tenant(self, operator_client, client, site, flow_bot, other_tenant):
        chat(client, site, messages=2)
        other = operator_client.get(MONITORING, {"tenant": other_tenant.pk}).context["report"]
        assert other.totals["messages_in"] == 0 and other.selected == other_tenant
        mine = operator_client.get(MONITORING, {"tenant": site.tenant_id}).context["report"]
        assert mine.totals["messages_in"] == 2

    @pytest.mark.parametrize(
        "wanted",
        ["\u00b2", "1\u00b2", "\u0661", " 1", "1\n", "-1", "1e3", "9" * 40],
        ids=[
            "superscript",
            "digit-superscript",
            "arabic-indic",
            "space",
            "newline",
            "minus",
            "float",
            "huge",
        ],
    )
    def test_a_tenant_id_that_is_not_ascii_digits_shows_all(
        self, operator_client, client, site, flow_bot, wanted
    ):
        chat(client, site, messages=2)
        response = operator_client.get(MONITORING, {"tenant": wanted})
        assert response.status_code == 200
        report = response.context["report"]
        assert report.selected is None and report.totals["messages_in"] == 2

    def test_an_unknown_tenant_id_is_a_404(self, operator_client, site):
        assert operator_client.get(MONITORING, {"tenant": site.tenant_id + 1000}).status_code == 404

    def test_site_readiness(self, operator_client, tenant):
        RolloutPolicyFactory(mode=Mode.PILOT)
        WebChatSiteFactory(tenant=tenant, name="No domains", allowed_domains=[])
        report = operator_client.get(MONITORING).context["report"]
        [row] = report.sites
        assert row.status == "blocked"
        failing = [label for label, ok, _ in row.checks if not ok]
        assert "Allowed domains set" in failing and "Bot assigned" in failing
        assert any(label.startswith("Rollout allows it (not_in_pilot)") for label in failing)

    def test_query_count_does_not_grow_with_tenants(
        self, operator_client, client, site, flow_bot, django_assert_max_num_queries
    ):
        chat(client, site, messages=2)
        services.gates_evaluate(demote=False)
        operator_client.get(MONITORING)
        with django_assert_max_num_queries(25) as few:
            operator_client.get(MONITORING)
        for _ in range(8):
            tenant = TenantFactory()
            WebChatSiteFactory(tenant=tenant)
            GateEvaluation.objects.create(
                tenant=tenant,
                status="pass",
                samples=1,
                window_start=timezone.now(),
                window_end=timezone.now(),
            )
        with django_assert_max_num_queries(len(few.captured_queries)):
            operator_client.get(MONITORING)
        with django_assert_max_num_queries(len(few.captured_queries)):
            operator_client.get(MONITORING, {"window": "7d"})


class TestCharts:
    def _parse(self, svg: str):
        return ElementTree.fromstring(svg)  # noqa: S314 (our own SVG)

    def test_empty_chart_says_so(self):
        svg = charts.line_chart(
            title="Traffic",
            hours=[],
            lines=[charts.Line("Sessions", [])],
            y_label="per hour",
            chart_id="c1",
        )
        root = self._parse(svg)
        texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
        assert "No data yet" in texts and "Hour (UTC)" in texts and "per hour" in texts
        assert root.find("{http://www.w3.org/2000/svg}polyline") is None

    def test_chart_with_data(self):
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        hours = [now - timedelta(hours=23 - i) for i in range(24)]
        svg = charts.line_chart(
            title="Traffic <&>",
            hours=hours,
            lines=[charts.Line("Sessions", list(range(24))), charts.Line("Errors", [0] * 24)],
            y_label="per hour",
            chart_id="c2",
        )
        root = self._parse(svg)  # well-formed, titles escaped
        ns = "{http://www.w3.org/2000/svg}"
        assert root.find(f"{ns}title").text == "Traffic <&>"
        lines = root.findall(f"{ns}polyline")
        assert len(lines) == 2 and len(lines[0].get("points").split()) == 24
        texts = [t.text for t in root.iter(f"{ns}text")]
        assert "40" in texts and "10" in texts  # whole, round y ticks above 23
        assert hours[0].strftime("%H:%M") in texts

    @pytest.mark.parametrize(
        ("peak", "step"), [(0, 1), (1, 1), (4, 1), (5, 2), (23, 10), (80, 20), (230, 100)]
    )
    def test_nice_step(self, peak, step):
        assert charts.nice_step(peak) == step


def test_the_admin_index_links_the_operator_screens(operator_client):
    body = operator_client.get("/admin/").content.decode()
    assert 'href="/admin/webchat-rollout"' in body
    assert 'href="/admin/webchat-monitoring"' in body
    assert "app-tenants" in body  # the admin's own app list stays


def test_the_tenant_rollout_admin_leads_to_the_tenant_page(operator_client, tenant):
    TenantRolloutFactory(tenant=tenant)
    response = operator_client.get(f"/admin/rollout/tenantrollout/{tenant.pk}/change/")
    assert response.status_code == 302
    assert response["Location"] == tenant_page(tenant)
    # an id that is no tenant's is a 404, never a 500
    for bad in ["abc", "1%00", "-3", "99999999999999999999", str(tenant.pk + 1000)]:
        response = operator_client.get(f"/admin/rollout/tenantrollout/{bad}/change/")
        assert response.status_code == 404, bad
