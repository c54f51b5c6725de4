"""Helpers for tests that start the app's own processes (gunicorn, a Celery worker)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

from django.conf import settings
from django.db import connection


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_settings_env(**extra: str) -> dict[str, str]:
    """The test settings, pointed at this test database and this run's cache prefix (the
    calling test must be transactional for the process to see what it created)."""
    db = connection.settings_dict
    run_id = settings.CACHES["default"]["KEY_PREFIX"].removeprefix("rbtest")
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    database_url = (
        f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": database_url,
        "TEST_REDIS_URL": settings.REDIS_URL,
        "TEST_RUN_ID": run_id,
        **extra,
    }


test_settings_env.__test__ = False  # a helper, not a test


def process_group_stop(process: subprocess.Popen, *, timeout: float = 10) -> None:
    """SIGTERM the process's group (started with start_new_session), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass
