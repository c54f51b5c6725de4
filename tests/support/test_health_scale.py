"""The health check with many connections, some or all of them hanging: each connection's
result (HealthCheck row, metrics, alert) is recorded the moment its probes end, and the beat
task queues the active connections in chunks, each its own run under its own time limits.

Probe timeouts are cut to fractions of a second (CHATWOOT_HEALTH_TIMEOUT_SECONDS); the
budget test holds the production figures against the chunk task's limits."""

import json
import math
import ssl
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command

from config.settings import base
from core.http import tls_context
from support import health
from support.alerts import ALERT_TIMEOUT_SECONDS
from support.models import HealthCheck, SupportAlert
from support.tasks import check_health_all, check_health_chunk
from tests.factories.support import ChatwootConnectionFactory
from tests.standins.chatwoot import ChatwootStandin

PROBE_TIMEOUT = 0.5


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


def test_the_beat_task_queues_the_active_connections_in_chunks(db, chatwoot_standin, settings):
    """Each chunk is a run of its own: its artifact, its evidence line, its exit code."""
    connections = [
        ChatwootConnectionFactory(base_url=chatwoot_standin.url)
        for _ in range(2 * health.CHUNK_SIZE + 3)
    ]
    ChatwootConnectionFactory(base_url=chatwoot_standin.url, active=False)
    assert check_health_all() == 3  # the chunk tasks queued (run at once here: eager)
    runs = artifacts(settings)
    chunks = [[c["id"] for c in run["connections"]] for run in runs]
    assert [len(chunk) for chunk in chunks] == [health.CHUNK_SIZE, health.CHUNK_SIZE, 3]
    assert [pk for chunk in chunks for pk in chunk] == [c.pk for c in connections]
    assert [run["exit_code"] for run in runs] == [0, 0, 0]
    assert HealthCheck.objects.filter(exit_code=0).count() == len(connections)
    [evidence] = Path(settings.SUPPORT_EVIDENCE_DIR).glob("*/chatwoot-health.log")
    run_lines = [line for line in evidence.read_text().splitlines() if not line.startswith(" ")]
    assert len(run_lines) == 3 and all("exit=0 (ok)" in line for line in run_lines)


def test_with_every_connection_hanging_a_chunk_takes_one_probe_timeout(
    db, chatwoot_standin, settings
):
    """Three chunks' worth of hanging Chatwoots: every row is written, and each chunk lasts
    one round of timeouts (all its connections at once), not one per 8 connections."""
    settings.CHATWOOT_HEALTH_TIMEOUT_SECONDS = PROBE_TIMEOUT
    chatwoot_standin.set_fault("hang", seconds=20)
    count = 2 * health.CHUNK_SIZE + 3
    for _ in range(count):
        ChatwootConnectionFactory(base_url=chatwoot_standin.url)
    assert check_health_all() == 3
    runs = artifacts(settings)
    assert [run["exit_code"] for run in runs] == [4, 4, 4]
    for run in runs:
        assert PROBE_TIMEOUT * 1000 <= run["duration_ms"] < 1.9 * PROBE_TIMEOUT * 1000
    assert HealthCheck.objects.filter(exit_code=4).count() == count
    errors = set(HealthCheck.objects.values_list("platform_error", "api_error"))
    assert errors == {("Connection timeout after 500ms", "Connection timeout after 500ms")}


def test_a_chunk_fits_inside_its_time_limit_when_everything_hangs():
    """The production figures: a chunk is no bigger than the thread pool, so when every
    Chatwoot of it hangs its probes take one timeout (10 s of the 60 s soft limit); if the
    alert webhook hangs as well, each page adds its 5 s timeout and it still fits."""
    soft_limit = check_health_chunk.soft_time_limit
    assert soft_limit < check_health_chunk.time_limit
    rounds = math.ceil(health.CHUNK_SIZE / health.MAX_PARALLEL_CONNECTIONS)
    probes = rounds * base.CHATWOOT_HEALTH_TIMEOUT_SECONDS
    assert (rounds, probes) == (1, 10.0)
    assert probes <= soft_limit / 6
    assert probes + health.CHUNK_SIZE * ALERT_TIMEOUT_SECONDS < soft_limit


def test_the_beat_task_with_nothing_configured_records_the_missing_configuration(db, settings):
    assert check_health_all() == 0  # nothing to queue
    [run] = artifacts(settings)
    assert run["status"] == "config_missing" and run["connections"] == []
    assert "CHATWOOT_BASE_URL environment variable not set" in run["errors"][0]


def test_an_env_configuration_problem_is_reported_by_the_first_chunk_only(
    db, chatwoot_standin, settings
):
    for _ in range(health.CHUNK_SIZE + 1):  # one tenant each: the env connection has no owner
        ChatwootConnectionFactory(base_url=chatwoot_standin.url)
    settings.CHATWOOT_BASE_URL = "http://127.0.0.1:9"
    assert check_health_all() == 2
    first, second = artifacts(settings)
    assert first["exit_code"] == 1 and "CHATWOOT_TENANT" in first["errors"][0]
    assert len(first["connections"]) == health.CHUNK_SIZE
    assert (second["exit_code"], second["errors"], len(second["connections"])) == (0, [], 1)


def test_a_chunk_skips_connections_deactivated_or_deleted_since_it_was_queued(
    db, chatwoot_standin, settings
):
    kept, deactivated, deleted = (
        ChatwootConnectionFactory(base_url=chatwoot_standin.url) for _ in range(3)
    )
    deactivated.active = False
    deactivated.save(update_fields=["active"])
    deleted_pk = deleted.pk
    deleted.delete()
    assert check_health_chunk(connection_ids=[kept.pk, deactivated.pk, deleted_pk]) == 0
    assert list(HealthCheck.objects.values_list("connection_id", flat=True)) == [kept.pk]
    # nothing left to check: no run, and no "nothing is configured" artifact either
    assert check_health_chunk(connection_ids=[deactivated.pk, deleted_pk]) == 0
    assert len(artifacts(settings)) == 1


def test_the_command_still_checks_every_connection_in_one_run(db, chatwoot_standin, settings):
    """`check_chatwoot_health --all` is not chunked: one artifact, one exit code."""
    count = health.CHUNK_SIZE + 2
    for _ in range(count):
        ChatwootConnectionFactory(base_url=chatwoot_standin.url)
    with pytest.raises(SystemExit) as exit_info:
        call_command("check_chatwoot_health", "--all", "--json")
    assert exit_info.value.code == 0
    [run] = artifacts(settings)
    assert run["exit_code"] == 0 and len(run["connections"]) == count


def test_a_run_builds_the_shared_tls_context_once(db, chatwoot_standin, monkeypatch):
    """The first run in a worker process: its 16 probe threads do not each build the TLS
    context (~30 ms of CPU each, one after the other under the GIL) before the first probe."""
    for _ in range(health.CHUNK_SIZE):
        ChatwootConnectionFactory(base_url=chatwoot_standin.url)
    tls_context.cache_clear()
    built = []
    real = ssl.create_default_context
    monkeypatch.setattr(
        ssl, "create_default_context", lambda *a, **k: built.append(1) or real(*a, **k)
    )
    try:
        assert health.health_check_run(health.connections_for_check()).exit_code == 0
    finally:
        tls_context.cache_clear()
    assert built == [1]
