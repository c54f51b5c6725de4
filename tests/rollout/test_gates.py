"""SLO gates measured from real traffic (sent through the public API), and auto-demotion."""

from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from crm.models import Direction, Message
from rollout import services
from rollout.alerts import alert_send
from rollout.exceptions import GatesNotPassing
from rollout.gates import gate_result_for_tenant, gate_results, percentile
from rollout.models import (
    AuditAction,
    AuditEntry,
    GateEvaluation,
    Mode,
    Override,
    Stage,
    TenantRollout,
)
from rollout.selectors import policy_read, tenant_stage, tenant_state_get
from tests.factories.rollout import RolloutPolicyFactory, TenantRolloutFactory
from tests.rollout.conftest import chat, visitor
from tests.widget_client import WidgetClient
from webchat.models import EventType, WebChatEvent

pytestmark = pytest.mark.django_db

SOON = timedelta(minutes=3)  # past the reply grace, so every message counts as due


def later():
    return timezone.now() + SOON


@pytest.fixture
def small_gates(settings):
    settings.ROLLOUT_GATE_MIN_MESSAGES = 8
    return settings


@pytest.fixture
def pilot_tenant(tenant):
    RolloutPolicyFactory(mode=Mode.PILOT)
    return TenantRolloutFactory(tenant=tenant, in_pilot=True).tenant


def levels(result) -> dict[str, str]:
    return {check.metric: check.level for check in result.checks}


class TestEvaluation:
    def test_no_traffic_is_insufficient(self, tenant):
        result = gate_result_for_tenant(tenant_id=tenant.pk)
        assert result.status == "insufficient"
        assert result.samples == 0
        assert set(levels(result).values()) == {"n/a"}

    def test_below_the_default_minimum_is_insufficient(self, client, site, flow_bot, settings):
        assert settings.ROLLOUT_GATE_MIN_MESSAGES == 100
        chat(client, site, messages=12)
        result = gate_result_for_tenant(tenant_id=site.tenant_id, now=later())
        assert result.status == "insufficient"
        assert result.samples == 12
        assert "12/100" in result.summary()
        # The metrics are measured anyway (shown on the screens), just not acted on.
        assert result.metrics.values()["message_success_rate"] == 1.0

    def test_passing_traffic(self, client, site, flow_bot, small_gates):
        chat(client, site, messages=10)
        result = gate_result_for_tenant(tenant_id=site.tenant_id, now=later())
        assert result.status == "pass", result.summary()
        values = result.metrics.values()
        assert values["message_success_rate"] == 1.0
        assert values["error_event_rate"] == 0.0
        assert values["ai_fallback_rate"] is None  # flows only: no AI replies to judge
        assert 0 <= values["p95_reply_seconds"] < 5
        assert result.metrics.sessions == 2
        assert result.metrics.widget_events == 4
        assert levels(result)["ai_fallback_rate"] == "n/a"

    def test_no_reply_old_enough_to_judge_is_insufficient_not_a_pass(
        self, client, site, flow_bot, small_gates
    ):
        """Enough messages, but all inside the reply grace (just after a stage change):
        nothing says replies work, so nothing is promoted on it."""
        chat(client, site, messages=10)
        result = gate_result_for_tenant(tenant_id=site.tenant_id)  # now: within the grace
        assert result.samples >= 10
        assert result.metrics.values()["message_success_rate"] is None
        assert result.status == "insufficient"
        assert "no value yet for message_success_rate" in result.summary()

    def test_ai_fallbacks_fail_the_gate(self, client, site, small_gates):
        # The site's bot has no knowledge articles: every question gets the fallback copy.
        chat(client, site, messages=10, text="what colour is the moon on tuesdays")
        outcomes = set(
            Message.objects.filter(direction=Direction.OUTBOUND).values_list(
                "metadata__ai_outcome", flat=True
            )
        )
        assert outcomes <= {"fallback", "timeout", "error"}, outcomes
        result = gate_result_for_tenant(tenant_id=site.tenant_id, now=later())
        assert result.status == "fail"
        assert result.metrics.values()["ai_fallback_rate"] == 1.0
        assert levels(result)["ai_fallback_rate"] == "fail"

    def test_widget_errors_fail_the_gate(self, client, site, flow_bot, small_gates):
        chat(client, site, messages=8)
        widget = visitor(client, site)
        response = widget.events([{"type": "error", "data": {"message": "boom"}}] * 6)
        assert response.status_code == 202
        result = gate_result_for_tenant(tenant_id=site.tenant_id, now=later())
        # 6 errors out of 2 × 2 (two visitors' load + open) + 6 = 10 widget events.
        assert result.metrics.values()["error_event_rate"] == 0.6
        assert levels(result)["error_event_rate"] == "fail"
        assert result.status == "fail"

    def test_between_target_and_hard_limit_is_a_warning(self, client, site, flow_bot, small_gates):
        small_gates.ROLLOUT_GATE_THRESHOLDS = {
            **small_gates.ROLLOUT_GATE_THRESHOLDS,
            "origin_denied_rate": {"target": 0.1, "hard": 5.0},
        }
        chat(client, site, messages=8)
        widget = visitor(client, site)
        assert widget.config(origin="https://evil.test").status_code == 403
        result = gate_result_for_tenant(tenant_id=site.tenant_id, now=later())
        assert result.metrics.origin_denied == 1
        assert levels(result)["origin_denied_rate"] == "warn"
        assert result.status == "warn"

    def test_a_returning_visitors_resumed_session_counts_for_incident_rates(
        self, client, site, flow_bot, small_gates
    ):
        """Sessions active in the window divide the incidents, not only those it created."""
        from webchat.models import WebChatSession

        chat(client, site, messages=10)
        WebChatSession.objects.filter(site=site).update(
            created_at=timezone.now() - timedelta(days=3)  # returning visitors, resumed
        )
        WebChatEvent.objects.create(
            tenant=site.tenant, site=site, type=EventType.TOKEN_INVALID, payload={}
        )
        result = gate_result_for_tenant(tenant_id=site.tenant_id, now=later())
        assert result.metrics.sessions == 2
        assert result.metrics.values()["token_failure_rate"] == 0.5  # 1 of 2, not 1 of 0

    def test_unanswered_messages_lower_the_success_rate(self, client, site, flow_bot, small_gates):
        chat(client, site, messages=8)
        # Two more nobody answers: handed off to people who have not replied yet.
        from bots.services import conversation_handoff
        from crm.models import Conversation

        widget = visitor(client, site)
        conversation_handoff(conversation=Conversation.objects.latest("id"), reason="test")
        widget.send("anyone there?")
        widget.send("hello?")
        result = gate_result_for_tenant(tenant_id=site.tenant_id, now=later())
        assert result.metrics.messages_due == 10
        assert result.metrics.messages_replied == 8
        assert result.metrics.values()["message_success_rate"] == 0.8
        assert result.status == "fail"
        # Young messages may still be answered: inside the grace they are not counted yet.
        fresh = gate_result_for_tenant(tenant_id=site.tenant_id)
        assert fresh.metrics.messages_due == 0

    def test_p95_reply_time_matches_the_rows(self, client, site, flow_bot, small_gates):
        chat(client, site, messages=10)
        # Slow down some replies: move them later in time.
        outbound = list(Message.objects.filter(direction=Direction.OUTBOUND).order_by("id"))
        for seconds, message in zip([40, 12, 3], outbound, strict=False):
            Message.objects.filter(pk=message.pk).update(
                created_at=message.created_at + timedelta(seconds=seconds)
            )
        latencies = []
        for inbound in Message.objects.filter(direction=Direction.INBOUND):
            reply = (
                Message.objects.filter(
                    conversation_id=inbound.conversation_id,
                    id__gt=inbound.pk,
                    direction=Direction.OUTBOUND,
                )
                .order_by("id")
                .first()
            )
            latencies.append((reply.created_at - inbound.created_at).total_seconds())
        result = gate_result_for_tenant(tenant_id=site.tenant_id, now=later())
        assert result.metrics.p95_reply_seconds == pytest.approx(percentile(latencies), abs=0.01)
        assert result.metrics.p95_reply_seconds > 10
        assert levels(result)["p95_reply_seconds"] in ("warn", "fail")

    def test_tenants_are_measured_apart(self, client, site, flow_bot, small_gates, other_tenant):
        chat(client, site, messages=8)
        results = gate_results(now=later())
        assert set(results) == {site.tenant_id}
        assert results[site.tenant_id].samples == 8

    def test_a_stage_change_restarts_the_window(self, client, site, flow_bot, small_gates):
        RolloutPolicyFactory(mode=Mode.PILOT)
        TenantRolloutFactory(tenant=site.tenant, in_pilot=True, canary_only=False)
        chat(client, site, messages=8)
        services.tenant_rollout_update(
            tenant=site.tenant, actor=None, reason="try canary only", canary_only=True
        )
        result = gate_result_for_tenant(tenant_id=site.tenant_id, now=later())
        assert result.samples == 0
        assert result.status == "insufficient"


class TestPromotion:
    def test_promotion_holds_without_enough_data(self, client, site, flow_bot, pilot_tenant):
        chat(client, site, messages=5)
        with pytest.raises(GatesNotPassing, match="insufficient data"):
            services.tenant_promote(tenant=pilot_tenant, actor=None, reason="looks fine")

    def test_promotion_when_gates_pass(self, client, site, flow_bot, pilot_tenant, small_gates):
        TenantRollout.objects.filter(tenant=pilot_tenant).update(canary_only=True)
        site.is_canary = True
        site.save()
        chat(client, site, messages=8)
        services.tenant_promote(
            tenant=pilot_tenant, actor=None, reason="canary clean for a day", now=later()
        )
        state = tenant_state_get(tenant=pilot_tenant)
        assert tenant_stage(policy_read(), state) == Stage.PILOT
        entry = AuditEntry.objects.get(action=AuditAction.PROMOTE)
        assert entry.before["stage"] == "canary" and entry.after["stage"] == "pilot"
        assert entry.metrics["status"] == "pass"
        assert entry.metrics["samples"] == 8

    def test_promotion_refused_when_gates_fail(self, client, site, pilot_tenant, small_gates):
        chat(client, site, messages=8, text="what colour is the moon on tuesdays")
        with pytest.raises(GatesNotPassing, match="ai_fallback_rate"):
            services.tenant_promote(tenant=pilot_tenant, actor=None, reason="ship it", now=later())


class TestAutoDemotion:
    def test_failing_gates_demote_audit_and_alert(
        self, client, site, pilot_tenant, small_gates, alert_sink
    ):
        chat(client, site, messages=8, text="what colour is the moon on tuesdays")
        with TestCase.captureOnCommitCallbacks(execute=True):
            results = services.gates_evaluate(now=later())
        assert [r.status for r in results] == ["fail"]
        assert tenant_state_get(tenant=pilot_tenant).override == Override.FORCE_OFF
        entry = AuditEntry.objects.get(action=AuditAction.AUTO_DEMOTE)
        assert entry.actor is None and entry.actor_label == "system: SLO gates"
        assert "ai_fallback_rate" in entry.reason
        assert entry.before["stage"] == "pilot" and entry.after["stage"] == "off"
        assert entry.metrics["status"] == "fail"
        assert entry.metrics["values"]["ai_fallback_rate"] == 1.0
        evaluation = GateEvaluation.objects.get(tenant=pilot_tenant)
        assert evaluation.status == "fail" and evaluation.action == "demoted from pilot"
        [text] = alert_sink.texts
        assert "auto-demoted pilot → off" in text and pilot_tenant.name in text
        # The widget is refused from now on...
        response = WidgetClient(client, site.site_key).config()
        assert response.json()["error"]["code"] == "webchat_disabled"
        # ...and the next evaluation measures the new stage only: no second demotion.
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.gates_evaluate(now=later() + timedelta(minutes=5))
        assert AuditEntry.objects.filter(action=AuditAction.AUTO_DEMOTE).count() == 1
        assert len(alert_sink.texts) == 1

    def test_demotion_back_to_pilot(self, client, site, small_gates, settings, alert_sink):
        settings.ROLLOUT_DEMOTION_TARGET = "pilot"
        RolloutPolicyFactory(mode=Mode.GA)
        chat(client, site, messages=8, text="what colour is the moon on tuesdays")
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.gates_evaluate(now=later())
        state = tenant_state_get(tenant=site.tenant)
        assert state.override == Override.HOLD_PILOT
        assert tenant_stage(policy_read(), state) == Stage.PILOT
        assert "auto-demoted full → pilot" in alert_sink.texts[0]

    def test_insufficient_data_never_demotes(self, client, site, pilot_tenant):
        chat(client, site, messages=8, text="what colour is the moon on tuesdays")
        [result] = services.gates_evaluate(now=later())
        assert result.status == "insufficient"
        assert tenant_state_get(tenant=pilot_tenant).override == Override.NONE
        assert not AuditEntry.objects.filter(action=AuditAction.AUTO_DEMOTE).exists()

    def test_outsiders_cannot_switch_a_tenant_off(
        self, client, site, flow_bot, pilot_tenant, small_gates
    ):
        """Refused origins and session-less error events can come from anyone who knows the
        site key: they hold promotion but never demote."""
        chat(client, site, messages=8)
        outsider = WidgetClient(client, site.site_key)
        for _ in range(20):
            assert outsider.config(origin="https://evil.test").status_code == 403
        forged = [{"type": "error", "data": {"message": "forged"}}] * 10
        assert outsider.events(forged, with_site_key=True).status_code == 202
        assert WebChatEvent.objects.filter(type=EventType.ERROR, session=None).count() == 10

        [result] = services.gates_evaluate(now=later())
        assert levels(result)["origin_denied_rate"] == "fail"  # the breach is shown...
        assert result.status == "warn"  # ...and holds promotion
        assert result.metrics.error_events == 0
        assert tenant_state_get(tenant=pilot_tenant).override == Override.NONE
        assert not AuditEntry.objects.filter(action=AuditAction.AUTO_DEMOTE).exists()
        assert WidgetClient(client, site.site_key).config().status_code == 200

    def test_a_dead_alert_sink_does_not_stop_the_demotion(
        self, client, site, pilot_tenant, small_gates, alert_sink
    ):
        alert_sink.set_fault("status", status=500)
        chat(client, site, messages=8, text="what colour is the moon on tuesdays")
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.gates_evaluate(now=later())
        assert tenant_state_get(tenant=pilot_tenant).override == Override.FORCE_OFF
        assert len(alert_sink.requests) == 1

    def test_a_malformed_alert_url_does_not_stop_the_demotion(
        self, client, site, pilot_tenant, small_gates, settings
    ):
        settings.ROLLOUT_ALERT_WEBHOOK_URL = "http://[::1"  # httpx.InvalidURL at request time
        chat(client, site, messages=8, text="what colour is the moon on tuesdays")
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.gates_evaluate(now=later())
        assert tenant_state_get(tenant=pilot_tenant).override == Override.FORCE_OFF
        assert AuditEntry.objects.filter(action=AuditAction.AUTO_DEMOTE).count() == 1


class TestAlerts:
    def test_posts_slack_compatible_json(self, alert_sink):
        assert alert_send(text="hello operators") is True
        [request] = alert_sink.requests
        assert request.json == {"text": "hello operators"}
        assert request.headers["content-type"] == "application/json"

    def test_never_raises(self, alert_sink, settings):
        alert_sink.set_fault("hang", seconds=5)
        settings.ROLLOUT_ALERT_TIMEOUT_SECONDS = 0.3
        assert alert_send(text="slow") is False
        alert_sink.stop()
        assert alert_send(text="down") is False
        settings.ROLLOUT_ALERT_WEBHOOK_URL = "not a url"
        assert alert_send(text="bad") is False
        settings.ROLLOUT_ALERT_WEBHOOK_URL = "http://[::1"  # httpx.InvalidURL
        assert alert_send(text="bad") is False

    def test_without_a_url_it_only_logs(self, settings):
        settings.ROLLOUT_ALERT_WEBHOOK_URL = ""
        assert alert_send(text="nobody listens") is False


class TestQuietTenants:
    def test_a_tenant_that_went_quiet_is_measured_again_once(self, client, site, small_gates):
        """Its last pass or fail must not stay on screens as current: the next evaluation
        says insufficient, and later ones store nothing more for it."""
        chat(client, site, messages=8, text="what colour is the moon on tuesdays")
        services.gates_evaluate(now=later(), demote=False)
        assert GateEvaluation.objects.get(tenant=site.tenant).status == "fail"

        quiet = later() + timedelta(days=2)  # the window has moved past the traffic
        services.gates_evaluate(now=quiet, demote=False)
        latest = GateEvaluation.objects.filter(tenant=site.tenant).first()
        assert latest.status == "insufficient" and latest.samples == 0
        services.gates_evaluate(now=quiet + timedelta(minutes=5), demote=False)
        assert GateEvaluation.objects.filter(tenant=site.tenant).count() == 2
