import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["X-Request-ID"]


@pytest.mark.django_db
def test_readyz_all_ok_against_real_services(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "broker"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
def test_readyz_reports_unreachable_redis(client):
    dead = f"redis://127.0.0.1:{_closed_port()}/0"
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": dead}
    }
    with override_settings(CACHES=caches, CELERY_BROKER_URL=dead):
        response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["cache"]["ok"] is False
    assert "Connection" in body["checks"]["cache"]["error"]
    assert body["checks"]["broker"]["ok"] is False


@pytest.mark.django_db
def test_metrics_counts_requests_by_route(client):
    client.get("/healthz")
    client.get("/healthz")
    body = client.get("/metrics").content.decode()
    line = next(
        ln
        for ln in body.splitlines()
        if ln.startswith("replybase_http_requests_total{")
        and 'route="healthz"' in ln
        and 'status="200"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2
    assert "replybase_http_request_duration_seconds_bucket" in body


def test_request_id_is_kept_when_sane_and_replaced_when_not(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\n<script>")["X-Request-ID"]
    assert replaced != "bad id\n<script>"
    assert len(replaced) == 32


def _run_manage(args: list[str], env: dict) -> subprocess.CompletedProcess:
    # A production process gets only its own environment, not the test runner's
    # (DJANGO_ALLOW_ASYNC_UNSAFE is for the browser tests and is itself a deploy warning).
    dropped = {
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "ALLOWED_HOSTS",
        "METRICS_TOKEN",
        "EMAIL_URL",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    }
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    base.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args, "--settings=config.settings.production"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION_ENV = {
    "SECRET_KEY": "x" * 64 + "-prod-secret-for-check-only",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "ALLOWED_HOSTS": "chat.example.com",
    "METRICS_TOKEN": "m" * 40,
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
}


@pytest.mark.slow
def test_production_refuses_to_start_without_required_env():
    result = _run_manage(["check"], {"SECRET_KEY": "only-this-one-is-set"})
    assert result.returncode != 0
    assert "DATABASE_URL, REDIS_URL, ALLOWED_HOSTS, METRICS_TOKEN, EMAIL_URL" in result.stderr


@pytest.mark.slow
def test_production_refuses_to_start_with_metrics_open():
    """/metrics lists every tenant's slug and rollout state: never public in production."""
    result = _run_manage(["check"], {**PRODUCTION_ENV, "METRICS_TOKEN": ""})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "environment variables: METRICS_TOKEN" in result.stderr


@pytest.mark.slow
def test_production_refuses_to_start_without_a_mailer():
    """Invitation links must not end up in the log."""
    result = _run_manage(["check"], {**PRODUCTION_ENV, "EMAIL_URL": ""})
    assert result.returncode != 0
    assert "environment variables: EMAIL_URL" in result.stderr


@pytest.mark.slow
def test_production_check_deploy_is_clean():
    result = _run_manage(["check", "--deploy", "--fail-level", "WARNING"], PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_metrics_with_a_token_need_exactly_that_bearer_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    refused = [
        {},
        {"HTTP_AUTHORIZATION": "Bearer wrong"},
        {"HTTP_AUTHORIZATION": "s3cret-metrics-token"},
        {"HTTP_AUTHORIZATION": "Bearer s3cret-metrics-token "},
        {"HTTP_AUTHORIZATION": "Bearer s3cret-metrics-tok\u00e9n"},  # not ASCII: still a 401
    ]
    for headers in refused:
        response = client.get("/metrics", **headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "unauthorized"
        assert b"replybase_" not in response.content
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")
    assert response.status_code == 200
    assert "replybase_rollout_" in response.content.decode()


@pytest.mark.django_db
def test_metrics_in_multiprocess_mode_include_scrape_time_gauges(client, tmp_path, monkeypatch):
    """Under gunicorn (PROMETHEUS_MULTIPROC_DIR) the rollout gauges must still be exposed."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    body = client.get("/metrics").content.decode()
    assert "replybase_rollout_" in body
