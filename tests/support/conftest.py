"""Fixtures for the Chatwoot support tests: a connection to the stand-in Chatwoot, signed
webhook posts (the same bytes and headers `deliver_webhook` sends), a knowledge base, and a
real local HTTP server that receives Slack-style alerts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from django.test import TestCase

from crm.models import Conversation, ConversationStatus
from support.models import WebhookDelivery
from tests.factories import KnowledgeArticleFactory
from tests.factories.bots import SAMPLE_ARTICLES
from tests.factories.support import WEBHOOK_SECRET, ChatwootConnectionFactory
from tests.standins.base import RecordedRequest, Response, StandinServer
from tests.standins.chatwoot import rails_json, sign_webhook

WEBHOOK_PATH = "/api/webhooks/chatwoot/{token}/"

ARTICLES = SAMPLE_ARTICLES
SHIPPING_QUESTION = "How much does standard shipping cost?"


@pytest.fixture(autouse=True)
def _support_settings(settings, tmp_path):
    """Fast backoff (1, 2, 4, 8 × 10 ms), artifacts under tmp_path, alerts off by default."""
    settings.CHATWOOT_RETRY_BASE_SECONDS = 0.01
    settings.CHATWOOT_HTTP_TIMEOUT = 3.0
    settings.CHATWOOT_HEALTH_ARTIFACT_DIR = str(tmp_path / "artifacts" / "ops" / "chatwoot-health")
    settings.SUPPORT_EVIDENCE_DIR = str(tmp_path / "artifacts" / "support")
    settings.SUPPORT_ALERT_WEBHOOK_URL = ""
    settings.CHATWOOT_BASE_URL = ""
    settings.CHATWOOT_TOKEN = ""


@pytest.fixture
def articles(tenant):
    return [
        KnowledgeArticleFactory(tenant=tenant, title=title, body=body, tags=tags)
        for title, body, tags in ARTICLES
    ]


@pytest.fixture
def connection(tenant, bot, chatwoot_standin):
    return ChatwootConnectionFactory(
        tenant=tenant, name="Main", base_url=chatwoot_standin.url, bot=bot
    )


class WebhookPoster:
    """Posts webhooks to our endpoint through the Django test client, byte-for-byte as
    Chatwoot's `Webhooks::Trigger` sends them, and runs on-commit work (the eager tasks)."""

    def __init__(self, client, connection) -> None:
        self.client = client
        self.connection = connection

    @property
    def url(self) -> str:
        return WEBHOOK_PATH.format(token=self.connection.webhook_token)

    def __call__(
        self,
        payload: dict,
        *,
        secret: str | None = WEBHOOK_SECRET,
        timestamp: int | str | None = None,
        delivery_id: str | None = None,
        sign: bool = True,
        tampered_body: bytes | None = None,
        token: str | None = None,
    ):
        body = rails_json(payload)
        headers = {"HTTP_X_CHATWOOT_DELIVERY": delivery_id or str(uuid.uuid4())}
        if sign and secret:
            ts = str(int(time.time()) if timestamp is None else timestamp)
            headers["HTTP_X_CHATWOOT_TIMESTAMP"] = ts
            headers["HTTP_X_CHATWOOT_SIGNATURE"] = sign_webhook(secret, ts, body)
        url = self.url if token is None else WEBHOOK_PATH.format(token=token)
        with TestCase.captureOnCommitCallbacks(execute=True):
            return self.client.post(
                url,
                data=body if tampered_body is None else tampered_body,
                content_type="application/json",
                HTTP_ACCEPT="application/json",
                **headers,
            )


@pytest.fixture
def post_webhook(client, connection) -> WebhookPoster:
    return WebhookPoster(client, connection)


def deliveries(connection, **filters) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(connection=connection, **filters).order_by("id"))


class AlertSink(StandinServer):
    """A Slack-compatible incoming webhook: records `{"text": ...}` posts, answers "ok"."""

    name = "alert-sink"

    def __init__(self) -> None:
        super().__init__()
        self.add_route("POST", "/services/hook", self._hook)

    def _hook(self, request: RecordedRequest) -> Response:
        return Response(200, b"ok", {"Content-Type": "text/plain"})

    @property
    def hook_url(self) -> str:
        return self.url + "/services/hook"

    @property
    def texts(self) -> list[str]:
        return [r.json["text"] for r in self.requests_to("POST /services/hook") if r.json]


@pytest.fixture
def alert_sink(settings) -> Iterator[AlertSink]:
    sink = AlertSink().start()
    settings.SUPPORT_ALERT_WEBHOOK_URL = sink.hook_url
    try:
        yield sink
    finally:
        sink.stop()


# --- webchat handoff helpers shared by the handoff tests ---------------------------------

HUMAN = "I want to talk to a person"


def incoming_texts(standin, conversation_id) -> list[str]:
    """The public incoming messages of a Chatwoot conversation at the stand-in."""
    return [
        m["content"]
        for m in standin.messages(conversation_id)
        if m["message_type"] == "incoming" and not m["private"]
    ]


def start_and_hand_off(widget_client) -> Conversation:
    """A visitor says hello, then asks for a person: the conversation is handed off."""
    assert widget_client.init().status_code == 200
    assert widget_client.send("Hello there").status_code == 201
    assert widget_client.send(HUMAN).status_code == 201
    conversation = Conversation.objects.get(pk=widget_client.conversation_id)
    assert conversation.status == ConversationStatus.HANDOFF
    return conversation
