"""Chatwoot health checks: platform health (no auth) and the authenticated profile API.

Both probes of a connection run concurrently, each with a 10 s timeout
(`CHATWOOT_HEALTH_TIMEOUT_SECONDS`), and connections run 8 at a time. Exit codes: 0 all
passed, 1 configuration missing, 2 platform health failed, 3 authenticated API failed,
4 both failed; a run over several connections exits with the highest code. Each run
writes a HealthCheck row per connection and alerts (level 1 for exit 2/3, level 2 page for
exit 4) as soon as that connection's probes end, unless a maintenance window is on, in
which case the failure is recorded as expected; at its end it writes a JSON artifact and
a line in the daily evidence log.

`manage.py check_chatwoot_health` is one run over the connections it names. The beat task
queues the active connections in chunks of `CHUNK_SIZE`, one task and one run each, so no
number of connections, hanging or not, outgrows a task's time limits.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog
from django.conf import settings
from django.utils import timezone

from core.http import tls_context
from support import metrics
from support.alerts import alert_send
from support.chatwoot.client import ChatwootClient, ProbeResult
from support.models import AlertLevel, ChatwootConnection, HealthCheck

log = structlog.get_logger(__name__)

EXIT_OK, EXIT_CONFIG, EXIT_PLATFORM, EXIT_API, EXIT_ALL = 0, 1, 2, 3, 4
STATUS_NAMES = {
    EXIT_OK: "ok",
    EXIT_CONFIG: "config_missing",
    EXIT_PLATFORM: "platform_health_failed",
    EXIT_API: "authenticated_api_failed",
    EXIT_ALL: "all_failed",
}
MAX_PARALLEL_CONNECTIONS = 8
# The beat task queues the active connections in chunks of this many, one task each. A chunk
# is no bigger than the thread pool, so its probes take one timeout however many of its
# Chatwoots hang (10 s of the chunk task's 60 s soft limit).
CHUNK_SIZE = MAX_PARALLEL_CONNECTIONS
RESPONSE_TARGET_MS = 500


def exit_code_for(*, platform_ok: bool, api_ok: bool) -> int:
    if platform_ok and api_ok:
        return EXIT_OK
    if not platform_ok and not api_ok:
        return EXIT_ALL
    return EXIT_PLATFORM if not platform_ok else EXIT_API


@dataclass
class ProbeRun:
    url: str
    result: ProbeResult
    started_at: datetime
    finished_at: datetime


@dataclass
class ConnectionHealth:
    connection: ChatwootConnection
    exit_code: int
    started_at: datetime
    duration_ms: int
    platform: ProbeRun | None = None
    api: ProbeRun | None = None
    missing: list[str] = field(default_factory=list)
    in_maintenance: bool = False
    warnings: list[str] = field(default_factory=list)
    check: HealthCheck | None = None

    @property
    def expected_failure(self) -> bool:
        return self.in_maintenance and self.exit_code in (EXIT_PLATFORM, EXIT_API, EXIT_ALL)


@dataclass
class HealthRun:
    exit_code: int
    started_at: datetime
    duration_ms: int
    results: list[ConnectionHealth]
    errors: list[str]
    artifact: Path | None = None


def _probe(url: str, call) -> ProbeRun:
    started = datetime.now(UTC)
    result = call()
    return ProbeRun(url=url, result=result, started_at=started, finished_at=datetime.now(UTC))


def connection_warnings(connection: ChatwootConnection) -> list[str]:
    warnings = []
    if connection.webhook_unsigned:
        warnings.append(
            "Webhooks are accepted unsigned: the webhook URL is the only credential "
            "(Chatwoot before 4.11). Upgrade Chatwoot and set a webhook secret."
        )
    elif not connection.webhook_secret_encrypted:
        warnings.append("No webhook secret is set: every webhook delivery is refused.")
    if connection.health_path.rstrip("/") == "/rails/health":
        warnings.append("/rails/health does not exist on current Chatwoot; use /health.")
    return warnings


def health_check_connection(
    connection: ChatwootConnection, *, in_maintenance: bool
) -> ConnectionHealth:
    """Run both probes concurrently (no database access: safe in a worker thread)."""
    started_at = timezone.now()
    started = time.perf_counter()
    missing = connection.missing_settings()
    result = ConnectionHealth(
        connection=connection,
        exit_code=EXIT_CONFIG,
        started_at=started_at,
        duration_ms=0,
        missing=missing,
        in_maintenance=in_maintenance,
        warnings=connection_warnings(connection),
    )
    if missing:
        return result
    client = ChatwootClient.for_connection(connection)
    path = (
        connection.health_path
        if connection.health_path.startswith("/")
        else "/" + connection.health_path
    )
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="chatwoot-health") as pool:
        platform = pool.submit(_probe, client.base_url + path, lambda: client.platform_health(path))
        api = pool.submit(_probe, client.base_url + "/api/v1/profile", client.profile)
        result.platform, result.api = platform.result(), api.result()
    result.exit_code = exit_code_for(
        platform_ok=result.platform.result.ok, api_ok=result.api.result.ok
    )
    result.duration_ms = int((time.perf_counter() - started) * 1000)
    return result


def connections_for_check(
    *, connection_id: int | None = None, connection_ids: list[int] | None = None
) -> list[ChatwootConnection]:
    """One connection (active or not), the active ones among `connection_ids`, or every
    active connection; by id."""
    qs = ChatwootConnection.objects.select_related("tenant").prefetch_related("maintenance_windows")
    if connection_id is not None:
        return list(qs.filter(pk=connection_id))
    if connection_ids is not None:
        qs = qs.filter(pk__in=connection_ids)
    return list(qs.filter(active=True).order_by("id"))


def connection_id_chunks_for_check(*, size: int = CHUNK_SIZE) -> list[list[int]]:
    """The active connections' ids, by id, in chunks of `size` (the beat task's fan-out)."""
    ids = list(
        ChatwootConnection.objects.filter(active=True).order_by("id").values_list("id", flat=True)
    )
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def health_check_chunk_run(*, connection_ids: list[int], errors: list[str]) -> HealthRun | None:
    """Check one chunk queued by the beat task: its connections still active (one
    deactivated or deleted since it was queued is skipped). None when none is left and
    there is no error to report: nothing to record."""
    connections = connections_for_check(connection_ids=connection_ids)
    if not connections and not errors:
        return None
    return health_check_run(connections, errors=errors)


def health_check_run(
    connections: list[ChatwootConnection], *, errors: list[str] | None = None
) -> HealthRun:
    """Check the connections concurrently; record and alert each as its probes end (a
    hanging Chatwoot holds up no other's row or page, and a run cut short keeps what it
    recorded), then write the run's artifact and evidence line."""
    errors = list(errors or [])
    started_at = timezone.now()
    started = time.perf_counter()
    if not connections and not errors:
        errors.append(
            "CHATWOOT_BASE_URL environment variable not set and no Chatwoot connection is "
            "configured."
        )
    maintenance = {
        c.pk: any(w.covers(started_at) for w in c.maintenance_windows.all()) for c in connections
    }
    # the rows name the artifact before it is written; if writing fails they are cleared
    artifact = _artifact_path(started_at)
    done: dict[int, ConnectionHealth] = {}
    if connections:
        tls_context()  # built here, once: the first probe threads would each build it at once
        workers = max(1, min(MAX_PARALLEL_CONNECTIONS, len(connections)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chatwoot-check") as pool:
            futures = {
                pool.submit(health_check_connection, c, in_maintenance=maintenance[c.pk]): index
                for index, c in enumerate(connections)
            }
            for future in as_completed(futures):
                result = future.result()
                result.check = _record(result, artifact=artifact)
                _alert(result)
                done[futures[future]] = result
    results = [done[index] for index in sorted(done)]
    codes = [r.exit_code for r in results] + ([EXIT_CONFIG] if errors else [])
    run = HealthRun(
        exit_code=max(codes, default=EXIT_CONFIG),
        started_at=started_at,
        duration_ms=int((time.perf_counter() - started) * 1000),
        results=results,
        errors=errors,
    )
    run.artifact = _artifact_write(run)
    if run.artifact is None and results:  # the rows must not name a file that is not there
        checks = [r.check for r in results if r.check is not None]
        HealthCheck.objects.filter(pk__in=[c.pk for c in checks]).update(artifact="")
        for check in checks:
            check.artifact = ""
    _evidence_append(run)
    return run


def _record(result: ConnectionHealth, *, artifact: Path | None) -> HealthCheck:
    platform, api = result.platform, result.api
    metrics.HEALTH_CHECKS.labels(str(result.exit_code), str(result.expected_failure).lower()).inc()
    for name, probe in (("platform_health", platform), ("authenticated_api", api)):
        if probe is not None:
            metrics.HEALTH_RESPONSE.labels(name).observe(probe.result.ms / 1000)
    log.info(
        "support.health_checked",
        tenant_id=result.connection.tenant_id,
        connection_id=result.connection.pk,
        exit_code=result.exit_code,
        in_maintenance=result.in_maintenance,
        platform_ms=platform.result.ms if platform else None,
        api_ms=api.result.ms if api else None,
    )
    return HealthCheck.objects.create(
        tenant_id=result.connection.tenant_id,
        connection=result.connection,
        exit_code=result.exit_code,
        platform_ok=platform.result.ok if platform else None,
        platform_status=platform.result.status if platform else None,
        platform_ms=platform.result.ms if platform else None,
        platform_error=platform.result.error if platform else "",
        api_ok=api.result.ok if api else None,
        api_status=api.result.status if api else None,
        api_ms=api.result.ms if api else None,
        api_error=api.result.error
        if api
        else ("Missing: " + ", ".join(result.missing) if result.missing else ""),
        in_maintenance=result.in_maintenance,
        started_at=result.started_at,
        duration_ms=result.duration_ms,
        artifact=str(artifact or "")[:500],
    )


def _failure_summary(result: ConnectionHealth) -> str:
    parts = []
    if result.platform and not result.platform.result.ok:
        parts.append(f"Platform health: {result.platform.result.error}")
    if result.api and not result.api.result.ok:
        parts.append(f"Authenticated API: {result.api.result.error}")
    return "; ".join(parts)


def _alert(result: ConnectionHealth) -> None:
    if result.exit_code not in (EXIT_PLATFORM, EXIT_API, EXIT_ALL):
        return
    connection = result.connection
    level = AlertLevel.PAGE if result.exit_code == EXIT_ALL else AlertLevel.WARNING
    what = (
        "Complete Chatwoot service failure"
        if result.exit_code == EXIT_ALL
        else "Chatwoot health check failure"
    )
    text = (
        f"{what} (exit code {result.exit_code}) for {connection.tenant.name} / "
        f"{connection.name} ({connection.base_url}): {_failure_summary(result)}"
    )
    if result.in_maintenance:
        text += " — during a maintenance window: expected, not escalated."
    elif result.exit_code == EXIT_ALL:
        text += " — page the on-call now."
    alert_send(
        kind=f"health_exit_{result.exit_code}",
        tenant_id=connection.tenant_id,
        level=level,
        text=text,
        suppressed=result.in_maintenance,
        # a check every 15 minutes: one alert per connection and failure per cooldown, not
        # one per check for as long as an outage lasts
        cooldown_key=f"health:{connection.pk}:{result.exit_code}",
    )


def _probe_json(probe: ProbeRun | None) -> dict | None:
    if probe is None:
        return None
    return {
        "url": probe.url,
        "ok": probe.result.ok,
        "http_status": probe.result.status,
        "response_time_ms": probe.result.ms,
        "within_target": probe.result.ms < RESPONSE_TARGET_MS,
        "error": probe.result.error or None,
        "started_at": probe.started_at.isoformat(),
        "finished_at": probe.finished_at.isoformat(),
    }


def _seconds(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def run_json(run: HealthRun) -> dict:
    return {
        "generated_at": run.started_at.isoformat(),
        "exit_code": run.exit_code,
        "status": STATUS_NAMES[run.exit_code],
        "duration_ms": run.duration_ms,
        "timeout_seconds_per_check": _seconds(settings.CHATWOOT_HEALTH_TIMEOUT_SECONDS),
        "errors": run.errors,
        "connections": [
            {
                "id": r.connection.pk,
                "tenant": r.connection.tenant.slug,
                "name": r.connection.name,
                "base_url": r.connection.base_url,
                "account_id": r.connection.account_id,
                "exit_code": r.exit_code,
                "status": STATUS_NAMES[r.exit_code],
                "missing": r.missing,
                "in_maintenance": r.in_maintenance,
                "expected_failure": r.expected_failure,
                "started_at": r.started_at.isoformat(),
                "duration_ms": r.duration_ms,
                "checks": {
                    "platform_health": _probe_json(r.platform),
                    "authenticated_api": _probe_json(r.api),
                },
                "warnings": r.warnings,
            }
            for r in run.results
        ],
    }


def _artifact_path(started_at: datetime) -> Path:
    stamp = started_at.astimezone(UTC).strftime("%Y-%m-%dT%H-%M-%S-%fZ")
    return Path(settings.CHATWOOT_HEALTH_ARTIFACT_DIR) / f"health-check-{stamp}.json"


def _artifact_write(run: HealthRun) -> Path | None:
    path = _artifact_path(run.started_at)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run_json(run), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        log.warning("support.health_artifact_failed", path=str(path), error=str(exc))
        run.errors.append(f"Could not write {path}: {exc.strerror}")
        return None
    return path


def _evidence_append(run: HealthRun) -> None:
    """One line per run in artifacts/support/YYYY-MM-DD/chatwoot-health.log."""
    day = run.started_at.astimezone(UTC).strftime("%Y-%m-%d")
    path = Path(settings.SUPPORT_EVIDENCE_DIR) / day / "chatwoot-health.log"
    lines = [
        f"{run.started_at.isoformat()} exit={run.exit_code} ({STATUS_NAMES[run.exit_code]})"
        + "".join(f" [{error}]" for error in run.errors)
    ]
    for r in run.results:
        line = f"  {r.connection.tenant.slug}/{r.connection.name}: exit={r.exit_code}"
        if r.platform:
            line += f" platform={r.platform.result.status or 'n/a'} {r.platform.result.ms}ms"
        if r.api:
            line += f" api={r.api.result.status or 'n/a'} {r.api.result.ms}ms"
        if r.in_maintenance:
            line += " (maintenance window)"
        if summary := _failure_summary(r):
            line += f" — {summary}"
        lines.append(line)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log_file:
            log_file.write("\n".join(lines) + "\n")
    except OSError as exc:
        log.warning("support.evidence_log_failed", path=str(path), error=str(exc))
