"""The health check with many connections, some or all of them hanging: each connection's
result (HealthCheck row, metrics, alert) is recorded the moment its probes end, and the beat
task queues the active connections in chunks, each its own run under its own time limits.

Probe timeouts are cut to fractions of a second (CHATWOOT_HEALTH_TIMEOUT_SECONDS); the
budget test holds the production figures against the chunk task's limits."""

import json
from datetime import timedelta
from pathlib import Path

import pytest

from support import health
from support.models import HealthCheck, SupportAlert
from tests.factories.support import ChatwootConnectionFactory
from tests.standins.chatwoot import ChatwootStandin


def artifacts(settings) -> list[dict]:
    """Every run's artifact, oldest first (the file names hold the run's start)."""
    paths = sorted(Path(settings.CHATWOOT_HEALTH_ARTIFACT_DIR).glob("health-check-*.json"))
    return [json.loads(path.read_text()) for path in paths]


@pytest.fixture
def hanging_standin():
    """A second Chatwoot that never answers (until the test ends and stops it)."""
    standin = ChatwootStandin().start()
    standin.set_fault("hang", seconds=20)
    try:
        yield standin
    finally:
        standin.stop()


def test_a_connection_is_recorded_and_alerted_as_soon_as_its_probes_end(
    tenant, other_tenant, chatwoot_standin, hanging_standin, alert_sink, settings
):
    """One Chatwoot hangs: the other connection's row and page do not wait for it."""
    settings.CHATWOOT_HEALTH_TIMEOUT_SECONDS = 1.5
    chatwoot_standin.set_fault("status", status=503)
    failing = ChatwootConnectionFactory(tenant=tenant, base_url=chatwoot_standin.url)
    hanging = ChatwootConnectionFactory(tenant=other_tenant, base_url=hanging_standin.url)
    run = health.health_check_run(health.connections_for_check())
    assert run.exit_code == 4
    soon, late = timedelta(seconds=0.75), timedelta(seconds=1.5)
    check = HealthCheck.objects.get(connection=failing)
    assert check.exit_code == 4 and check.created_at - run.started_at < soon
    alert = SupportAlert.objects.get(tenant=tenant)
    assert alert.delivered and alert.created_at - run.started_at < soon
    hung = HealthCheck.objects.get(connection=hanging)
    assert hung.exit_code == 4 and hung.created_at - run.started_at >= late
    assert "Connection timeout after 1500ms" in hung.api_error
    assert len(alert_sink.texts) == 2
    # the run as a whole is unchanged: one artifact in the order checked, rows pointing at it
    [data] = artifacts(settings)
    assert [c["id"] for c in data["connections"]] == [failing.pk, hanging.pk]
    assert {check.artifact, hung.artifact} == {str(run.artifact)}


def test_rows_name_no_artifact_when_it_cannot_be_written(connection, settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.CHATWOOT_HEALTH_ARTIFACT_DIR = str(blocker / "chatwoot-health")
    run = health.health_check_run(health.connections_for_check())
    assert run.artifact is None and "Could not write" in run.errors[0]
    assert HealthCheck.objects.get().artifact == ""
