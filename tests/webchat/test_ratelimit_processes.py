"""Rate limits hold across two server processes that share Redis.

Two real gunicorn servers are started as subprocesses on the test database (the test is
transactional, so what it creates is committed and visible to them) and with this run's
cache key prefix (`TEST_RUN_ID`), so both count against the same Redis keys. Requests
alternate between them: together they allow exactly the limit, then both answer 429.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from crm.models import Message
from tests.processes import free_port, process_group_stop, test_settings_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
API = "/api/webchat/v1/"
ORIGIN = "https://shop.example.com"
# Hour windows: django-ratelimit counts in fixed windows, and a window boundary falling
# inside the test would reset the count (at most a second of requests in an hour).
CONFIG_IP_LIMIT = 5
MESSAGES_SESSION_LIMIT = 3
LIMIT_ENV = {
    "WEBCHAT_RL_CONFIG_IP": f"{CONFIG_IP_LIMIT}/h",
    "WEBCHAT_RL_INIT_IP": "100/h",
    "WEBCHAT_RL_MESSAGES_SESSION": f"{MESSAGES_SESSION_LIMIT}/h",
}
RETRY_AFTER = "3600"
START_TIMEOUT = 30.0


@dataclass
class ServerProcess:
    process: subprocess.Popen
    base_url: str
    log_path: Path

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])


def _server_env() -> dict[str, str]:
    return test_settings_env(**LIMIT_ENV)


def _start(tmp_path: Path, name: str, env: dict[str, str]) -> ServerProcess:
    port = free_port()
    # An explicit empty config: gunicorn would otherwise load the repo's production one.
    config = tmp_path / "gunicorn.test.py"
    config.write_text("")
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                f"--config={config}",
                f"--bind=127.0.0.1:{port}",
                "--workers=1",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stopping it stops its worker too
        )
    return ServerProcess(process, f"http://127.0.0.1:{port}", log_path)


def _wait_ready(server: ServerProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"server exited at start:\n{server.log_tail()}")
        try:
            if httpx.get(server.base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"server did not answer /healthz in {START_TIMEOUT:g} s:\n{server.log_tail()}")


def _stop(server: ServerProcess) -> None:
    process_group_stop(server.process)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Two gunicorn processes, always stopped (before the test database is flushed)."""
    env = _server_env()
    started: list[ServerProcess] = []
    try:
        for name in ("a", "b"):
            started.append(_start(tmp_path, name, env))
        for server in started:
            _wait_ready(server)
        yield started
    finally:
        for server in started:
            _stop(server)


def _assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    # The seconds left in the counter's window (django-ratelimit's fixed, jittered windows).
    assert 1 <= int(response.headers["Retry-After"]) <= int(RETRY_AFTER)
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["message"]


def _config(server: ServerProcess, site_key: str) -> httpx.Response:
    return httpx.get(
        server.base_url + API + "config",
        params={"site_key": site_key},
        headers={"Origin": ORIGIN},
        timeout=10,
    )


def test_config_ip_limit_is_shared(servers, site):
    a, b = servers
    allowed = [_config((a, b)[i % 2], site.site_key).status_code for i in range(CONFIG_IP_LIMIT)]
    assert allowed == [200] * CONFIG_IP_LIMIT
    # The limit is used up on both servers, whichever got more of the allowed requests.
    for server in (a, b, a, b):
        _assert_rate_limited(_config(server, site.site_key))


def test_messages_session_limit_is_shared(servers, site):
    a, b = servers
    challenge = _config(a, site.site_key).json()["challenge"]
    # The session starts on one server; its token is good on the other (same secret).
    init = httpx.post(
        b.base_url + API + "init",
        json={"site_key": site.site_key, "challenge": challenge},
        headers={"Origin": ORIGIN},
        timeout=10,
    )
    assert init.status_code == 200, init.text
    headers = {"Origin": ORIGIN, "Authorization": f"Bearer {init.json()['session_token']}"}

    def send(server: ServerProcess, text: str) -> httpx.Response:
        body = {"text": text, "client_message_id": uuid.uuid4().hex}
        return httpx.post(
            server.base_url + API + "messages", json=body, headers=headers, timeout=30
        )

    codes = [send((a, b)[i % 2], f"message {i}").status_code for i in range(MESSAGES_SESSION_LIMIT)]
    assert codes == [201] * MESSAGES_SESSION_LIMIT
    for server in (b, a):
        _assert_rate_limited(send(server, "one too many"))
    stored = Message.objects.filter(
        direction="inbound", conversation_id=init.json()["conversation_id"]
    )
    assert stored.count() == MESSAGES_SESSION_LIMIT
