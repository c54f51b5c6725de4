import uuid
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import Permission
from django.db import connection

from tests.factories import UserFactory
from tests.factories.rollout import RolloutPolicyFactory
from tests.standins.base import Response, StandinServer
from tests.widget_client import WidgetClient

ORIGIN = "https://shop.example.com"


class AlertSink(StandinServer):
    """A Slack-compatible incoming webhook: records every POSTed {"text": ...}."""

    name = "alert-sink"
    path = "/services/T000/B000/rollout"

    def __init__(self) -> None:
        super().__init__()
        self.add_route("POST", self.path, lambda request: Response(200, b"ok"))

    @property
    def hook_url(self) -> str:
        return self.url + self.path

    @property
    def texts(self) -> list[str]:
        return [r.json["text"] for r in self.requests_to(f"POST {self.path}") if r.json]


@pytest.fixture
def alert_sink(settings):
    sink = AlertSink().start()
    settings.ROLLOUT_ALERT_WEBHOOK_URL = sink.hook_url
    settings.ROLLOUT_ALERT_TIMEOUT_SECONDS = 2.0
    yield sink
    sink.stop()


@pytest.fixture
def operator(db):
    return UserFactory(username="ops@replybase.example", is_staff=True, is_superuser=True)


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def staff_viewer(db):
    """Staff, allowed to view rollout records but not to change the rollout."""
    user = UserFactory(username="viewer@replybase.example", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="rollout", codename__startswith="view_")
    )
    return user


@pytest.fixture
def pilot_policy(db):
    return RolloutPolicyFactory(mode="pilot")


def visitor(client, site, *, ip: str | None = None) -> WidgetClient:
    """A new widget visitor (own IP, so per-IP limits don't bite many-message tests)."""
    widget = WidgetClient(client, site.site_key, origin=ORIGIN)
    widget.client.defaults["REMOTE_ADDR"] = (
        ip or f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    )
    response = widget.init()
    assert response.status_code == 200, response.content
    return widget


def chat(client, site, *, messages: int, text: str = "pricing please", per_visitor: int = 5):
    """Send `messages` visitor messages through the real API (several visitors)."""
    sent = 0
    while sent < messages:
        widget = visitor(client, site)
        widget.events([{"type": "widget_loaded"}, {"type": "launcher_opened"}])
        for _ in range(min(per_visitor, messages - sent)):
            response = widget.send(text)
            assert response.status_code == 201, response.content
            sent += 1
    return sent


@contextmanager
def reads():
    """Counts the queries run and the rows they return (psycopg sets `rowcount` to the
    rows of a SELECT once it has run; not for `.iterator()`, whose server-side cursor
    streams its rows later: this counts those as none)."""
    seen = {"queries": 0, "rows": 0}

    def count(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        seen["queries"] += 1
        if sql.lstrip().upper().startswith("SELECT"):
            seen["rows"] += max(context["cursor"].rowcount, 0)
        return result

    with connection.execute_wrapper(count):
        yield seen
