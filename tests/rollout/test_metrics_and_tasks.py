"""Prometheus gauges for rollout state and gates; the beat wiring."""

import pytest
from django.conf import settings
from django.utils import timezone

from config.celery import app as celery_app
from rollout import services
from rollout.metrics import RolloutCollector
from rollout.models import GateEvaluation, Mode
from tests.factories.rollout import RolloutPolicyFactory, TenantRolloutFactory


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_gauges_follow_the_state(client, tenant, other_tenant, operator):
    RolloutPolicyFactory(mode=Mode.TIERED, allowed_tiers=["pro"])
    TenantRolloutFactory(tenant=tenant, in_pilot=True, canary_only=True)
    GateEvaluation.objects.create(
        tenant=tenant,
        status="fail",
        samples=321,
        window_start=timezone.now(),
        window_end=timezone.now(),
        result={"values": {"error_event_rate": 0.25, "p95_reply_seconds": None}},
    )
    text = scrape(client)
    assert "replybase_rollout_webchat_enabled 1.0" in text
    assert 'replybase_rollout_mode{mode="tiered"} 1.0' in text
    assert 'replybase_rollout_mode{mode="ga"} 0.0' in text
    assert 'replybase_rollout_tier_enabled{tier="pro"} 1.0' in text
    # Tenant is pro and the pro tier is on: full, even though it is a canary-only pilot.
    assert f'replybase_rollout_tenant_stage{{stage="full",tenant="{tenant.slug}"}} 1.0' in text
    assert f'replybase_rollout_gate_status{{status="fail",tenant="{tenant.slug}"}} 1.0' in text
    assert f'replybase_rollout_gate_samples{{tenant="{tenant.slug}"}} 321.0' in text
    assert (
        f'replybase_rollout_gate_value{{metric="error_event_rate",tenant="{tenant.slug}"}} 0.25'
        in text
    )
    assert 'replybase_rollout_tenants{stage="full"} 2.0' in text
    assert other_tenant.slug not in text  # not in the rollout, not evaluated: no series
    services.kill_switch_set(actor=operator, reason="scrape test", enabled=False)
    assert "replybase_rollout_webchat_enabled 0.0" in scrape(client)


def test_a_scrape_without_the_database_yields_nothing():
    """Outside a DB-enabled test the ORM refuses: the collector must swallow it."""
    assert list(RolloutCollector().collect()) == []


def test_beat_runs_the_rollout_tasks():
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["rollout-scheduled-changes"]["task"] == "rollout.tasks.apply_scheduled_changes"
    assert schedule["rollout-gates"]["task"] == "rollout.tasks.evaluate_gates"
    assert schedule["rollout-scheduled-changes"]["schedule"] <= 60
    celery_app.loader.import_default_modules()
    for entry in ("rollout-scheduled-changes", "rollout-gates"):
        assert schedule[entry]["task"] in celery_app.tasks


@pytest.mark.django_db
def test_evaluate_gates_task_counts_statuses(client, site, settings):
    from rollout.tasks import evaluate_gates
    from tests.rollout.conftest import chat

    chat(client, site, messages=2, text="hello")
    assert evaluate_gates.delay().get() == {"insufficient": 1}
    assert GateEvaluation.objects.get().samples == 2
