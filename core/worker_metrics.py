"""/metrics of a Celery worker: what its tasks count (AI replies, webhook processing,
health checks, alerts, the support monitor's gauges) on a port of its own.

The web's /metrics merges only its gunicorn workers' files; a Celery worker usually runs
elsewhere, so with `WORKER_METRICS_PORT` set it serves its own metrics there, merged over
its pool's processes (prometheus_client's multi-process mode: `PROMETHEUS_MULTIPROC_DIR`
must be set for the worker, as the Procfile does). Scrape it from the internal network:
it binds `WORKER_METRICS_ADDR` (127.0.0.1 unless set) and has no token, and none of its
series names a tenant.
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog
from celery.signals import worker_init, worker_process_shutdown
from prometheus_client import CollectorRegistry, multiprocess, start_http_server

log = structlog.get_logger(__name__)


def _clear_stale_files(path: Path) -> None:
    """A previous run's files (other pids) would be merged in as if alive."""
    own = f"_{os.getpid()}.db"
    for stale in path.glob("*.db"):
        if not stale.name.endswith(own):
            stale.unlink(missing_ok=True)


@worker_init.connect
def serve_worker_metrics(**_kwargs) -> None:
    port = os.environ.get("WORKER_METRICS_PORT", "")
    if not port:
        return
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if not directory or not port.isdigit():
        log.error(
            "worker_metrics.not_served",
            reason="WORKER_METRICS_PORT needs a port number and PROMETHEUS_MULTIPROC_DIR",
        )
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    _clear_stale_files(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(path))
    address = os.environ.get("WORKER_METRICS_ADDR", "127.0.0.1")
    start_http_server(int(port), addr=address, registry=registry)
    log.info("worker_metrics.serving", address=address, port=int(port))


@worker_process_shutdown.connect
def forget_pool_process(pid: int | None = None, **_kwargs) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid or os.getpid())
