"""check_chatwoot_health: exit codes 0–4, concurrency, the 10 s timeout, artifacts,
HealthCheck rows, alerts and maintenance windows."""

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from support.models import HealthCheck, MaintenanceWindow, Recurrence, SupportAlert
from support.tasks import check_health_all
from tests.factories.support import ChatwootConnectionFactory


def run(*args) -> tuple[int, str]:
    from io import StringIO

    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("check_chatwoot_health", *args, stdout=out, stderr=out)
    return exit_info.value.code, out.getvalue()


def artifact(settings) -> dict:
    [path] = sorted(Path(settings.CHATWOOT_HEALTH_ARTIFACT_DIR).glob("health-check-*.json"))
    return json.loads(path.read_text())


def test_exit_0_when_both_checks_pass(connection, chatwoot_standin, settings):
    code, out = run()
    assert code == 0, out
    assert "Platform health: OK" in out and "Authenticated API: OK" in out
    assert [r.path for r in chatwoot_standin.requests] == ["/health", "/api/v1/profile"] or [
        r.path for r in chatwoot_standin.requests
    ] == ["/api/v1/profile", "/health"]
    health_request = chatwoot_standin.requests_to("GET /health")[0]
    assert "api_access_token" not in health_request.headers  # platform health: no auth
    assert chatwoot_standin.requests_to("GET /api/v1/profile")[0].headers["api_access_token"]
    check = HealthCheck.objects.get(connection=connection)
    assert check.exit_code == 0 and check.platform_status == 200 and check.api_status == 200
    data = artifact(settings)
    assert data["exit_code"] == 0 and data["status"] == "ok"
    [entry] = data["connections"]
    probe = entry["checks"]["platform_health"]
    assert probe["ok"] and probe["http_status"] == 200 and probe["response_time_ms"] < 500
    assert probe["url"].endswith("/health") and probe["started_at"] and probe["finished_at"]
    assert entry["checks"]["authenticated_api"]["within_target"] is True
    evidence = list(Path(settings.SUPPORT_EVIDENCE_DIR).glob("*/chatwoot-health.log"))
    assert evidence and "exit=0" in evidence[0].read_text()


def test_exit_1_when_nothing_is_configured(db, settings):
    code, out = run()
    assert code == 1
    assert "CHATWOOT_BASE_URL environment variable not set" in out
    assert artifact(settings)["status"] == "config_missing"


def test_exit_1_when_a_connection_misses_its_token(tenant, chatwoot_standin):
    connection = ChatwootConnectionFactory(
        tenant=tenant, base_url=chatwoot_standin.url, api_token=""
    )
    code, out = run("--connection", str(connection.pk))
    assert code == 1 and "API access token" in out
    assert HealthCheck.objects.get().exit_code == 1
    assert not chatwoot_standin.requests  # nothing was called


def test_exit_1_for_an_unknown_connection_id(db):
    code, out = run("--connection", "999999")
    assert code == 1 and "No Chatwoot connection has id 999999" in out


def test_exit_2_when_platform_health_fails(connection, chatwoot_standin, alert_sink):
    chatwoot_standin.set_fault("status", status=503, route="GET /health")
    code, out = run("--all")
    assert code == 2
    assert "Platform health: FAILED HTTP 503" in out
    [text] = alert_sink.texts
    assert text.startswith("[Level 1]") and "exit code 2" in text


def test_the_runbooks_rails_health_path_is_a_404_on_current_chatwoot(connection, settings):
    connection.health_path = "/rails/health"
    connection.save()
    code, out = run()
    assert code == 2
    assert "HTTP 404" in out and "/rails/health does not exist" in out
    assert artifact(settings)["connections"][0]["warnings"]


def test_exit_3_when_the_token_is_refused_and_the_token_is_never_printed(
    connection, chatwoot_standin, settings, alert_sink
):
    connection.set_api_token("wrong-token")
    connection.save()
    code, out = run("--json")
    assert code == 3
    data = json.loads(out)
    api = data["connections"][0]["checks"]["authenticated_api"]
    assert api["http_status"] == 401 and api["error"] == "HTTP 401: Invalid Access Token"
    assert HealthCheck.objects.get().api_error == "HTTP 401: Invalid Access Token"
    assert "[Level 1]" in alert_sink.texts[0]
    # The profile answer holds the access token: it must never reach output or artifacts.
    connection.set_api_token("cw-standin-token")
    connection.save()
    code, out = run("--json")
    assert code == 0
    every_artifact = "".join(
        p.read_text() for p in Path(settings.CHATWOOT_HEALTH_ARTIFACT_DIR).glob("*.json")
    )
    assert "cw-standin-token" not in out + every_artifact


def test_exit_3_when_the_token_cannot_see_the_account(connection):
    connection.account_id = 42
    connection.save()
    code, out = run()
    assert code == 3 and "no access to account 42" in out


def test_a_connection_whose_request_cannot_be_sent_fails_alone(
    connection, chatwoot_standin, other_tenant
):
    """A token pasted with a zero-width space cannot go in an HTTP header: that connection
    fails its check, every other tenant's is still run and recorded."""
    pasted = ChatwootConnectionFactory(
        tenant=other_tenant, base_url=chatwoot_standin.url, api_token="cw-pasted\u200b"
    )
    code, out = run("--all")
    assert code == 3, out
    assert HealthCheck.objects.get(connection=connection).exit_code == 0
    check = HealthCheck.objects.get(connection=pasted)
    assert (check.exit_code, check.platform_ok, check.api_ok) == (3, True, False)
    assert "not ASCII" in check.api_error
    assert "cw-pasted" not in out + check.api_error


def test_exit_4_when_everything_fails_pages(connection, chatwoot_standin, alert_sink):
    chatwoot_standin.set_fault("status", status=503)
    code, _ = run()
    assert code == 4
    [text] = alert_sink.texts
    assert text.startswith("[Level 2 · PAGE]") and "page the on-call" in text
    alert = SupportAlert.objects.get()
    assert alert.delivered and alert.level == 2


def test_an_ongoing_outage_alerts_once_per_cooldown(connection, chatwoot_standin, alert_sink):
    chatwoot_standin.set_fault("status", status=503)
    for _ in range(3):  # 45 minutes of checks, every 15
        assert run()[0] == 4
    assert len(alert_sink.texts) == 1
    assert HealthCheck.objects.filter(connection=connection).count() == 3
    chatwoot_standin.clear_faults()
    chatwoot_standin.set_fault("status", status=503, route="GET /health")
    assert run()[0] == 2  # another failure: its own alert
    assert len(alert_sink.texts) == 2


def test_exit_4_when_chatwoot_is_unreachable(connection, chatwoot_standin):
    chatwoot_standin.stop()
    code, out = run()
    assert code == 4 and "Connection refused" in out


def test_the_two_checks_run_concurrently(connection, chatwoot_standin):
    chatwoot_standin.set_fault("slow", seconds=1.0)
    started = time.monotonic()
    code, _ = run()
    elapsed = time.monotonic() - started
    assert code == 0
    assert 1.0 <= elapsed < 1.8  # about the slowest check, not the sum (2 s)


def test_several_connections_are_checked_together_and_the_worst_code_wins(
    connection, chatwoot_standin, tenant
):
    broken = ChatwootConnectionFactory(tenant=tenant, base_url=chatwoot_standin.url, api_token="x")
    code, _ = run("--all")
    assert code == 3
    assert HealthCheck.objects.filter(connection=connection, exit_code=0).exists()
    assert HealthCheck.objects.filter(connection=broken, exit_code=3).exists()


@pytest.mark.slow
def test_a_hanging_chatwoot_times_out_after_10_seconds(connection, chatwoot_standin, settings):
    chatwoot_standin.set_fault("hang", seconds=25)
    started = time.monotonic()
    code, _ = run()
    elapsed = time.monotonic() - started
    assert code == 4
    assert 9.5 <= elapsed < 13  # both 10 s timeouts at once, not 20 s
    entry = artifact(settings)["connections"][0]
    for probe in entry["checks"].values():
        assert probe["error"] == "Connection timeout after 10000ms"
        assert probe["response_time_ms"] >= 9500


def test_the_probe_timeout_is_a_setting(connection, chatwoot_standin, settings):
    settings.CHATWOOT_HEALTH_TIMEOUT_SECONDS = 0.3
    chatwoot_standin.set_fault("hang", seconds=3)
    started = time.monotonic()
    code, _ = run()
    elapsed = time.monotonic() - started
    assert code == 4
    assert elapsed < 1.5  # 0.3 s timeouts, not the 3 s hang
    data = artifact(settings)
    assert data["timeout_seconds_per_check"] == 0.3
    for probe in data["connections"][0]["checks"].values():
        assert probe["error"] == "Connection timeout after 300ms"


def test_maintenance_window_records_failures_as_expected_and_suppresses_alerts(
    connection, chatwoot_standin, alert_sink, settings
):
    now = timezone.now()
    MaintenanceWindow.objects.create(
        connection=connection,
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=1),
    )
    chatwoot_standin.set_fault("status", status=503)
    code, out = run()
    assert code == 4
    assert "maintenance window" in out
    check = HealthCheck.objects.get()
    assert check.in_maintenance
    assert alert_sink.texts == []
    alert = SupportAlert.objects.get()
    assert alert.suppressed and not alert.delivered
    entry = artifact(settings)["connections"][0]
    assert entry["in_maintenance"] and entry["expected_failure"]


def test_monthly_window_is_the_second_tuesday(connection):
    window = MaintenanceWindow(
        connection=connection,
        starts_at=datetime(2025, 10, 14, 2, 0, tzinfo=UTC),  # 2nd Tuesday of October
        ends_at=datetime(2025, 10, 14, 4, 0, tzinfo=UTC),
        recurrence=Recurrence.MONTHLY,
    )
    assert window.covers(datetime(2025, 11, 11, 3, 0, tzinfo=UTC))  # 2nd Tuesday of November
    assert not window.covers(datetime(2025, 11, 11, 4, 0, tzinfo=UTC))
    assert not window.covers(datetime(2025, 11, 4, 3, 0, tzinfo=UTC))  # 1st Tuesday
    assert window.covers(datetime(2026, 2, 10, 2, 0, tzinfo=UTC))
    assert not window.covers(datetime(2025, 10, 13, 3, 0, tzinfo=UTC))
    weekly = MaintenanceWindow(
        connection=connection,
        starts_at=datetime(2025, 10, 14, 2, 0, tzinfo=UTC),
        ends_at=datetime(2025, 10, 14, 4, 0, tzinfo=UTC),
        recurrence=Recurrence.WEEKLY,
    )
    assert weekly.covers(datetime(2025, 10, 21, 3, 59, tzinfo=UTC))
    assert not weekly.covers(datetime(2025, 10, 22, 3, 0, tzinfo=UTC))


def test_env_vars_define_a_default_connection(tenant, chatwoot_standin, settings):
    settings.CHATWOOT_BASE_URL = chatwoot_standin.url
    settings.CHATWOOT_TOKEN = "cw-standin-token"
    settings.CHATWOOT_ACCOUNT_ID = "1"
    settings.CHATWOOT_SLA_MINUTES = 20
    code, _ = run()
    assert code == 0
    connection = HealthCheck.objects.get().connection
    assert connection.name == "default (env)" and connection.tenant == tenant
    assert connection.token_from_env and connection.api_token_encrypted == ""
    assert connection.sla_minutes == 20 and connection.account_id == 1


def test_env_connection_needs_a_tenant_when_there_are_several(tenant, other_tenant, settings):
    settings.CHATWOOT_BASE_URL = "http://127.0.0.1:9"
    code, out = run()
    assert code == 1 and "CHATWOOT_TENANT" in out


def test_beat_task_checks_every_active_connection(connection, tenant, chatwoot_standin):
    ChatwootConnectionFactory(tenant=tenant, base_url=chatwoot_standin.url, active=False)
    assert check_health_all() == 1  # one chunk task queued (run at once: eager)
    assert HealthCheck.objects.count() == 1
    assert HealthCheck.objects.get().exit_code == 0
