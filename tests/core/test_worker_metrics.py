"""A Celery worker serves what its tasks count on its own /metrics port.

A real worker (prefork pool, this test database, a queue of its own on Redis) runs a
health check of a Chatwoot connection nobody answers; the counter that task bumps in a
pool process is on the worker's metrics port, merged by the main process.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from config.celery import app
from tests.factories.support import ChatwootConnectionFactory
from tests.processes import free_port, process_group_stop, test_settings_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 40.0
COUNTER = 'replybase_support_health_checks_total{exit_code="4",expected="false"}'  # both down


def _scrape(url: str) -> str | None:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def _wait_for(predicate, process: subprocess.Popen, log: Path, what: str):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the worker exited:\n{log.read_text(errors='replace')[-3000:]}")
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} within {TIMEOUT:g} s:\n{log.read_text(errors='replace')[-3000:]}")


def test_a_workers_task_counts_are_on_its_metrics_port(tmp_path, tenant):
    ChatwootConnectionFactory(tenant=tenant)  # http://127.0.0.1:9: nothing listens there
    port, queue = free_port(), f"replybase-test-{uuid.uuid4().hex[:8]}"
    metrics_dir = tmp_path / "prometheus"
    (metrics_dir).mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"")  # a previous run's file: cleared
    env = test_settings_env(
        WORKER_METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        SUPPORT_EVIDENCE_DIR=str(tmp_path / "evidence"),
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "config", "worker"),
                *("--pool=prefork", "--concurrency=1", f"--queues={queue}", "--loglevel=INFO"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        _wait_for(lambda: _scrape(url) is not None, worker, log, "no metrics port")
        assert not (metrics_dir / "counter_999999.db").exists()
        app.send_task("support.tasks.check_health_all", queue=queue)
        text = _wait_for(
            lambda: (body := _scrape(url)) and COUNTER in body and body, worker, log, "no count"
        )
        [line] = [line for line in text.splitlines() if line.startswith(COUNTER)]
        assert float(line.split()[-1]) == 1.0
    finally:
        process_group_stop(worker, timeout=20)
