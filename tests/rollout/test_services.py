"""Rollout services: audit entries with metric snapshots, validation, schedules, demo data."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import TestCase
from django.utils import timezone

from rollout import services
from rollout.exceptions import ChangeInvalid, GatesNotPassing, NoChange, ReasonRequired
from rollout.models import (
    AuditAction,
    AuditEntry,
    Mode,
    Override,
    RolloutPolicy,
    ScheduledChange,
    ScheduleStatus,
    Stage,
    TenantRollout,
)
from rollout.selectors import policy_read, tenant_stage, tenant_state_get, webchat_allowed
from tests.factories import TenantFactory
from tests.factories.rollout import RolloutPolicyFactory, TenantRolloutFactory
from tests.factories.webchat import WebChatSiteFactory
from tests.rollout.conftest import chat

pytestmark = pytest.mark.django_db


class TestPolicy:
    def test_update_writes_audit_with_snapshot(self, operator, client, site, flow_bot):
        chat(client, site, messages=3)
        policy = services.policy_update(actor=operator, reason="start the pilot", mode=Mode.PILOT)
        assert policy.mode == Mode.PILOT
        entry = AuditEntry.objects.get()
        assert entry.actor == operator
        assert entry.actor_label == operator.username
        assert entry.action == AuditAction.POLICY_UPDATE
        assert entry.before == {"mode": "ga", "webchat_enabled": True, "allowed_tiers": []}
        assert entry.after == {"mode": "pilot", "webchat_enabled": True, "allowed_tiers": []}
        assert entry.reason == "start the pilot"
        assert entry.metrics["scope"] == "all"
        tenant_metrics = entry.metrics["tenants"][str(site.tenant_id)]
        assert tenant_metrics["samples"] == 3
        assert tenant_metrics["status"] == "insufficient"
        assert entry.metrics["overall"]["counts"]["messages_in"] == 3
        assert entry.changed == [("mode", "ga", "pilot")]

    def test_kill_switch_is_audited_as_such_and_alerts(self, operator, alert_sink):
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.kill_switch_set(actor=operator, reason="bad deploy", enabled=False)
        entry = AuditEntry.objects.get()
        assert entry.action == AuditAction.KILL_SWITCH
        assert entry.changed == [("webchat_enabled", True, False)]
        assert "KILLED" in alert_sink.texts[0] and "bad deploy" in alert_sink.texts[0]

    @pytest.mark.parametrize("reason", ["", "   ", "ok", None])
    def test_reason_is_required(self, operator, reason):
        with pytest.raises(ReasonRequired):
            services.policy_update(actor=operator, reason=reason, mode=Mode.OFF)
        assert not AuditEntry.objects.exists()
        assert not RolloutPolicy.objects.exists()

    def test_reason_is_required_by_the_database_too(self):
        with pytest.raises(IntegrityError), transaction.atomic():
            AuditEntry.objects.create(actor_label="x", action="policy_update", reason="")

    @pytest.mark.parametrize(
        "changes",
        [
            {"mode": "everything"},
            {"allowed_tiers": ["gold"]},
            {"colour": "red"},
            {"webchat_enabled": "no"},
        ],
    )
    def test_invalid_changes(self, operator, changes):
        with pytest.raises(ChangeInvalid):
            services.policy_update(actor=operator, reason="testing", **changes)

    def test_no_change_is_refused(self, operator):
        with pytest.raises(NoChange):
            services.policy_update(actor=operator, reason="same again", mode=Mode.GA)

    def test_widening_needs_passing_gates(self, operator, client, site, flow_bot, settings):
        settings.ROLLOUT_GATE_MIN_MESSAGES = 5
        RolloutPolicyFactory(mode=Mode.PILOT)
        TenantRolloutFactory(tenant=site.tenant, in_pilot=True)
        with pytest.raises(GatesNotPassing, match="no exposed tenant passes yet"):
            services.policy_update(actor=operator, reason="go wide", mode=Mode.GA)
        # Narrowing and the pilot itself are never gated.
        services.policy_update(actor=operator, reason="pause", mode=Mode.OFF)
        services.policy_update(actor=operator, reason="resume", mode=Mode.PILOT)
        chat(client, site, messages=5)
        settings.ROLLOUT_GATE_REPLY_GRACE_SECONDS = 0
        services.policy_update(
            actor=operator, reason="pilot is healthy", mode=Mode.TIERED, allowed_tiers=["pro"]
        )
        assert policy_read().mode == Mode.TIERED

    def test_widening_with_a_failing_tenant_can_be_forced(self, operator, client, site, settings):
        settings.ROLLOUT_GATE_MIN_MESSAGES = 5
        settings.ROLLOUT_GATE_REPLY_GRACE_SECONDS = 0
        RolloutPolicyFactory(mode=Mode.PILOT)
        TenantRolloutFactory(tenant=site.tenant, in_pilot=True)
        chat(client, site, messages=5, text="what colour is the moon on tuesdays")
        with pytest.raises(GatesNotPassing, match=site.tenant.name):
            services.policy_update(actor=operator, reason="go wide", mode=Mode.GA)
        services.policy_update(
            actor=operator, reason="exec decision, see ticket 9", override_gates=True, mode=Mode.GA
        )
        entry = AuditEntry.objects.latest("id")
        assert entry.after["gates_overridden"] is True
        assert entry.metrics["tenants"][str(site.tenant_id)]["status"] == "fail"


class TestTenants:
    def test_override_is_audited_with_tenant_snapshot(self, operator, tenant):
        services.tenant_override_set(tenant=tenant, actor=operator, reason="abuse", override="off")
        entry = AuditEntry.objects.get()
        assert entry.tenant == tenant
        assert entry.action == AuditAction.TENANT_UPDATE
        assert entry.before == {
            "override": "",
            "in_pilot": False,
            "canary_only": False,
            "stage": "full",
        }
        assert entry.after["override"] == "off" and entry.after["stage"] == "off"
        assert entry.metrics["scope"] == "tenant"
        assert entry.metrics["status"] == "insufficient"
        assert set(entry.metrics["values"]) >= {"error_event_rate", "p95_reply_seconds"}
        assert TenantRollout.objects.get(tenant=tenant).gate_since is not None

    def test_invalid_override(self, operator, tenant):
        with pytest.raises(ChangeInvalid):
            services.tenant_override_set(
                tenant=tenant, actor=operator, reason="x y z", override="maybe"
            )

    @pytest.mark.parametrize(
        ("start", "target", "override", "stage"),
        [
            ({}, "off", Override.FORCE_OFF, Stage.OFF),
            ({}, "pilot", Override.HOLD_PILOT, Stage.PILOT),
            ({}, "canary", Override.HOLD_PILOT, Stage.CANARY),
            (
                {"override": Override.HOLD_PILOT, "in_pilot": True},
                "pilot",
                Override.FORCE_OFF,
                Stage.OFF,
            ),
            (
                {"override": Override.HOLD_PILOT, "in_pilot": True},
                "canary",
                Override.HOLD_PILOT,
                Stage.CANARY,
            ),
        ],
    )
    def test_demotion_targets(self, operator, tenant, start, target, override, stage):
        RolloutPolicyFactory(mode=Mode.GA)
        if start:
            TenantRolloutFactory(tenant=tenant, **start)
        services.tenant_demote(tenant=tenant, actor=operator, reason="errors up", target=target)
        state = tenant_state_get(tenant=tenant)
        assert state.override == override
        assert tenant_stage(policy_read(), state) == stage
        assert AuditEntry.objects.get().action == AuditAction.DEMOTE

    def test_demoting_an_off_tenant(self, operator, tenant):
        RolloutPolicyFactory(mode=Mode.PILOT)
        with pytest.raises(NoChange, match="already off"):
            services.tenant_demote(tenant=tenant, actor=operator, reason="again")

    def test_promotion_path(self, operator, tenant, settings, monkeypatch):
        """canary → pilot → full; a held tenant in GA is released rather than forced on."""
        RolloutPolicyFactory(mode=Mode.PILOT)
        TenantRolloutFactory(tenant=tenant, in_pilot=True, canary_only=True)
        passing = services.gate_result_for_tenant(tenant_id=tenant.pk)
        passing.status = "pass"
        monkeypatch.setattr(services, "gate_result_for_tenant", lambda **kw: passing)
        services.tenant_promote(tenant=tenant, actor=operator, reason="canary ok")
        assert tenant_stage(policy_read(), tenant_state_get(tenant=tenant)) == Stage.PILOT
        services.tenant_promote(tenant=tenant, actor=operator, reason="pilot ok")
        assert tenant_state_get(tenant=tenant).override == Override.FORCE_ON
        with pytest.raises(ChangeInvalid, match="only a pilot tenant"):
            services.tenant_promote(tenant=tenant, actor=operator, reason="more")
        # Held at pilot under GA: promotion just releases the hold.
        RolloutPolicy.objects.filter(pk=1).update(mode=Mode.GA)
        TenantRollout.objects.filter(tenant=tenant).update(override=Override.HOLD_PILOT)
        services.tenant_promote(tenant=tenant, actor=operator, reason="recovered")
        assert tenant_state_get(tenant=tenant).override == Override.NONE

    def test_a_promotion_refused_when_the_tenant_moved_while_the_gates_were_measured(
        self, operator, tenant, monkeypatch
    ):
        """Promote reads 'pilot' and measures the gates; meanwhile the beat task demotes the
        tenant to off. Forcing it on now would jump off -> full: refused instead."""
        RolloutPolicyFactory(mode=Mode.PILOT)
        TenantRolloutFactory(tenant=tenant, in_pilot=True)
        passing = services.gate_result_for_tenant(tenant_id=tenant.pk)
        passing.status = "pass"

        def gates_while_demoted(**kwargs):
            TenantRollout.objects.filter(tenant=tenant).update(override=Override.FORCE_OFF)
            return passing

        monkeypatch.setattr(services, "gate_result_for_tenant", gates_while_demoted)
        with pytest.raises(ChangeInvalid, match="moved to stage off while this promotion"):
            services.tenant_promote(tenant=tenant, actor=operator, reason="pilot ok")
        assert tenant_state_get(tenant=tenant).override == Override.FORCE_OFF
        assert not AuditEntry.objects.filter(action=AuditAction.PROMOTE).exists()

    def test_site_canary_flag(self, operator, site):
        services.site_canary_set(site=site, actor=operator, reason="low-risk blog", is_canary=True)
        site.refresh_from_db()
        assert site.is_canary
        entry = AuditEntry.objects.get()
        assert (entry.action, entry.site, entry.tenant_id) == (
            AuditAction.SITE_CANARY,
            site,
            site.tenant_id,
        )
        with pytest.raises(NoChange):
            services.site_canary_set(site=site, actor=operator, reason="again", is_canary=True)


def _force_on_planned(operator, tenant, *, canary_only: bool = False):
    """A pilot tenant, and a change planned for a minute from now that forces it on."""
    RolloutPolicyFactory(mode=Mode.PILOT)
    TenantRolloutFactory(tenant=tenant, in_pilot=True, canary_only=canary_only)
    return services.scheduled_change_create(
        actor=operator,
        reason="full rollout on Monday",
        run_at=timezone.now() + timedelta(minutes=1),
        target="tenant",
        tenant=tenant,
        changes={"override": Override.FORCE_ON},
    )


class TestScheduledChanges:
    def test_policy_change_applied_when_due(self, operator, site):
        run_at = timezone.now() + timedelta(hours=1)
        change = services.scheduled_change_create(
            actor=operator,
            reason="pilot starts Monday 9:00",
            run_at=run_at,
            target="policy",
            changes={"mode": "pilot"},
        )
        assert AuditEntry.objects.get().action == AuditAction.SCHEDULE_CREATE
        assert services.scheduled_change_apply_due() == 0  # not yet
        assert webchat_allowed(site).allowed
        assert services.scheduled_change_apply_due(now=run_at + timedelta(seconds=1)) == 1
        change.refresh_from_db()
        assert change.status == ScheduleStatus.APPLIED and change.applied_at is not None
        assert policy_read().mode == Mode.PILOT
        applied = AuditEntry.objects.get(action=AuditAction.POLICY_UPDATE)
        assert applied.scheduled_change == change
        assert applied.actor == operator
        assert applied.actor_label == f"{operator.username} (scheduled #{change.pk})"
        assert applied.reason == "pilot starts Monday 9:00"
        assert webchat_allowed(site).reason == "not_in_pilot"  # the cache saw the change
        assert services.scheduled_change_apply_due(now=run_at + timedelta(hours=1)) == 0

    def test_tenant_change_through_the_beat_task(self, operator, tenant):
        from rollout.tasks import apply_scheduled_changes

        change = services.scheduled_change_create(
            actor=operator,
            reason="join the pilot",
            run_at=timezone.now() + timedelta(minutes=10),
            target="tenant",
            tenant=tenant,
            changes={"in_pilot": True, "canary_only": True},
        )
        ScheduledChange.objects.filter(pk=change.pk).update(
            run_at=timezone.now() - timedelta(seconds=1)
        )
        assert apply_scheduled_changes.delay().get() == 1
        state = tenant_state_get(tenant=tenant)
        assert (state.in_pilot, state.canary_only) == (True, True)

    def test_a_scheduled_widening_does_not_undo_a_demotion_made_after_it_was_planned(
        self, operator, tenant, alert_sink
    ):
        change = _force_on_planned(operator, tenant, canary_only=True)
        services.tenant_demote(
            tenant=tenant, actor=operator, reason="errors spiked", target=Stage.OFF
        )
        services.tenant_rollout_update(
            tenant=tenant, actor=operator, reason="back on the blog", override=Override.NONE
        )  # widened again by hand: the demotion still came after the plan
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.scheduled_change_apply_due(now=timezone.now() + timedelta(minutes=2))
        change.refresh_from_db()
        assert change.status == ScheduleStatus.FAILED
        assert "was demoted (errors spiked)" in change.error
        assert tenant_stage(policy_read(), tenant_state_get(tenant=tenant)) == Stage.CANARY
        assert f"#{change.pk} failed" in alert_sink.texts[-1]

    def test_a_scheduled_widening_does_not_undo_a_force_off_from_the_tenant_page(
        self, operator, tenant
    ):
        change = _force_on_planned(operator, tenant)
        services.tenant_override_set(
            tenant=tenant, actor=operator, reason="contract paused", override=Override.FORCE_OFF
        )
        services.scheduled_change_apply_due(now=timezone.now() + timedelta(minutes=2))
        change.refresh_from_db()
        assert change.status == ScheduleStatus.FAILED
        assert "contract paused" in change.error
        assert tenant_state_get(tenant=tenant).override == Override.FORCE_OFF

    def test_refused_change_is_marked_failed_audited_and_alerted(self, operator, alert_sink):
        RolloutPolicyFactory(mode=Mode.PILOT)
        change = services.scheduled_change_create(
            actor=operator,
            reason="go wide at night",
            run_at=timezone.now() + timedelta(minutes=1),
            target="policy",
            changes={"mode": "ga"},
        )
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.scheduled_change_apply_due(now=timezone.now() + timedelta(minutes=2))
        change.refresh_from_db()
        assert change.status == ScheduleStatus.FAILED
        assert "SLO gates" in change.error
        assert AuditEntry.objects.filter(action=AuditAction.SCHEDULE_FAIL).count() == 1
        assert policy_read().mode == Mode.PILOT
        assert f"#{change.pk} failed" in alert_sink.texts[0]

    def test_change_already_in_effect(self, operator):
        change = services.scheduled_change_create(
            actor=operator,
            reason="pilot",
            run_at=timezone.now() + timedelta(minutes=1),
            target="policy",
            changes={"mode": "pilot"},
        )
        services.policy_update(actor=operator, reason="earlier", mode=Mode.PILOT)
        services.scheduled_change_apply_due(now=timezone.now() + timedelta(minutes=2))
        change.refresh_from_db()
        assert change.status == ScheduleStatus.APPLIED
        assert "Already in effect" in change.error

    def test_cancel(self, operator):
        change = services.scheduled_change_create(
            actor=operator,
            reason="pilot",
            run_at=timezone.now() + timedelta(minutes=1),
            target="policy",
            changes={"mode": "pilot"},
        )
        services.scheduled_change_cancel(change=change, actor=operator, reason="not this week")
        assert services.scheduled_change_apply_due(now=timezone.now() + timedelta(hours=1)) == 0
        with pytest.raises(ChangeInvalid, match="already cancelled"):
            services.scheduled_change_cancel(change=change, actor=operator, reason="again")

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({"run_at": timezone.now() - timedelta(minutes=1)}, "in the future"),
            ({"target": "tenant"}, "with its tenant"),
            ({"changes": {"mode": "sideways"}}, "Unknown mode"),
        ],
    )
    def test_invalid_schedules(self, operator, kwargs, error):
        arguments = {
            "actor": operator,
            "reason": "later",
            "run_at": timezone.now() + timedelta(hours=1),
            "target": "policy",
            "changes": {"mode": "pilot"},
            **kwargs,
        }
        with pytest.raises(ChangeInvalid, match=error):
            services.scheduled_change_create(**arguments)


class TestDemoSeed:
    @pytest.fixture(autouse=True)
    def _demo_mode(self, settings):
        settings.DEMO_MODE = True  # seed_demo refuses to run on a non-demo install

    def test_seed_demo_leaves_the_demo_tenant_allowed(self, settings):
        call_command("seed_demo", "--json", stdout=open("/dev/null", "w"))  # noqa: SIM115
        policy = policy_read()
        assert policy.saved and policy.mode == Mode.PILOT
        from tenants.models import Tenant
        from webchat.models import WebChatSite

        demo = Tenant.objects.get(slug="demo")
        assert tenant_state_get(tenant=demo).in_pilot
        site = WebChatSite.objects.get(tenant=demo)
        assert webchat_allowed(site).allowed
        entries = AuditEntry.objects.count()
        call_command("seed_demo", "--json", stdout=open("/dev/null", "w"))  # noqa: SIM115
        assert AuditEntry.objects.count() == entries  # idempotent

    def test_seeding_a_demo_beside_other_tenants_turns_none_of_them_off(self, site):
        """An unsaved policy (ROLLOUT_DEFAULT_MODE, GA here) with tenants already served."""
        assert webchat_allowed(site).allowed
        call_command("seed_demo", "--json", stdout=open("/dev/null", "w"))  # noqa: SIM115
        assert policy_read().mode == Mode.GA
        assert webchat_allowed(site).allowed

    def test_demo_ensure_undoes_a_kill_and_a_forced_off(self, operator):
        tenant = TenantFactory(slug="demo-x")
        site = WebChatSiteFactory(tenant=tenant)
        RolloutPolicyFactory(mode=Mode.OFF, webchat_enabled=False)
        TenantRolloutFactory(tenant=tenant, override=Override.FORCE_OFF)
        services.rollout_demo_ensure(tenant=tenant)
        assert webchat_allowed(site).allowed
        assert AuditEntry.objects.filter(actor_label="seed_demo").count() == 2


@pytest.mark.django_db(transaction=True)
def test_migration_moves_webchat_enabled_into_the_override():
    executor = MigrationExecutor(connection)
    before = [("rollout", "0001_initial"), ("tenants", "0001_initial")]
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    OldTenant = old_apps.get_model("tenants", "Tenant")
    OldTenant.objects.create(name="Off", slug="off", webchat_enabled=False)
    OldTenant.objects.create(name="On", slug="on", webchat_enabled=True)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    from tenants.models import Tenant

    off = Tenant.objects.get(slug="off")
    assert TenantRollout.objects.get(tenant=off).override == Override.FORCE_OFF
    assert not TenantRollout.objects.filter(tenant__slug="on").exists()
    entry = AuditEntry.objects.get(tenant=off)
    assert entry.action == AuditAction.MIGRATED and entry.actor_label == "migration"
    assert not hasattr(off, "webchat_enabled")
