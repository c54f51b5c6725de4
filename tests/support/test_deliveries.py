"""Duplicate and replayed deliveries are processed once; the acknowledgement is fast and
does not wait for processing; processing errors never reach Chatwoot."""

import time

import pytest
from django.test import TestCase

from support import tasks, webhooks
from support.chatwoot.events import delivery_fallback_key
from support.models import ApprovalItem, WebhookDelivery
from tests.standins.chatwoot import rails_json, sign_webhook
from tests.support.conftest import SHIPPING_QUESTION, deliveries

MESSAGES_ROUTE = "POST /api/v1/accounts/*/conversations/*/messages"


@pytest.fixture
def payload(chatwoot_standin):
    conv = chatwoot_standin.seed_conversation()
    return chatwoot_standin.make_webhook(
        "message_created", conversation_id=conv["id"], content=SHIPPING_QUESTION
    )


def test_a_redelivery_with_the_same_delivery_id_is_acknowledged_not_processed(
    connection, post_webhook, payload, chatwoot_standin, articles
):
    first = post_webhook(payload, delivery_id="6a1b2c3d-0000-4000-8000-000000000001")
    again = post_webhook(payload, delivery_id="6a1b2c3d-0000-4000-8000-000000000001")
    assert first.json() == {"status": "accepted"}
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert len(deliveries(connection)) == 1
    assert ApprovalItem.objects.count() == 1
    assert len(chatwoot_standin.requests_to(MESSAGES_ROUTE)) == 1  # one private note


def test_the_same_event_sent_twice_with_new_delivery_ids_drafts_once(
    connection, post_webhook, payload, chatwoot_standin, articles
):
    # sent again later, so signed anew (the same signature would be a replay, refused)
    now = int(time.time())
    post_webhook(payload, timestamp=now - 1)
    post_webhook(payload, timestamp=now)
    assert [d.outcome for d in deliveries(connection)] == [
        "customer_message",
        "customer_message:already_drafted",
    ]
    assert ApprovalItem.objects.count() == 1
    assert len(chatwoot_standin.requests_to(MESSAGES_ROUTE)) == 1


def test_a_replay_later_than_five_minutes_is_refused(connection, post_webhook, payload):
    old = int(time.time()) - 6 * 60
    response = post_webhook(payload, delivery_id="captured", timestamp=old)
    assert response.status_code == 401
    assert not ApprovalItem.objects.exists()


def test_without_a_delivery_header_event_and_ids_dedupe(
    connection, post_webhook, payload, client, articles
):
    body = rails_json(payload)
    for _ in range(2):
        ts = str(int(time.time()))
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = client.post(
                post_webhook.url,
                data=body,
                content_type="application/json",
                HTTP_X_CHATWOOT_TIMESTAMP=ts,
                HTTP_X_CHATWOOT_SIGNATURE=sign_webhook("whsec-chatwoot-tests", ts, body),
            )
        assert response.status_code == 200
    [delivery] = deliveries(connection)
    assert delivery.delivery_key == f"message_created:message:{payload['id']}"
    assert ApprovalItem.objects.count() == 1


def test_status_changes_without_delivery_ids_are_not_merged(
    connection, post_webhook, chatwoot_standin
):
    conv = chatwoot_standin.seed_conversation()
    resolved = chatwoot_standin.make_webhook(
        "conversation_status_changed", conversation_id=conv["id"], status="resolved"
    )
    reopened = chatwoot_standin.make_webhook(
        "conversation_status_changed", conversation_id=conv["id"], status="open"
    )
    keys = {delivery_fallback_key("conversation_status_changed", p) for p in (resolved, reopened)}
    assert len(keys) == 2


def test_acknowledgement_does_not_wait_for_processing(
    connection, post_webhook, payload, monkeypatch, articles
):
    queued = []
    monkeypatch.setattr(tasks.process_webhook, "delay", lambda **kw: queued.append(kw))
    now = int(time.time())
    post_webhook(payload, timestamp=now)  # warm up URL resolution and connections
    timings = []
    for n in range(1, 6):
        started = time.perf_counter()
        response = post_webhook(payload, timestamp=now - n)  # each signed anew
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200
    assert min(timings) < 0.1, timings
    assert len(queued) == 6
    stored = deliveries(connection)
    assert all(d.valid and not d.processed for d in stored)
    # A lost task is caught up by the monitor's sweep.
    monkeypatch.undo()
    assert webhooks.deliveries_reprocess(older_than_seconds=0) == 6
    assert ApprovalItem.objects.count() == 1
    assert all(d.processed for d in deliveries(connection))


def test_a_processing_error_is_recorded_and_never_reaches_chatwoot(
    connection, post_webhook, payload, monkeypatch
):
    def explode(connection, event):
        raise RuntimeError("database said no")

    monkeypatch.setattr(webhooks, "_apply", explode)
    response = post_webhook(payload)
    assert response.status_code == 200
    [delivery] = deliveries(connection)
    assert not delivery.processed and delivery.attempts == 1
    assert "database said no" in delivery.error
    monkeypatch.undo()
    assert webhooks.webhook_process(delivery_id=delivery.pk) == "customer_message"
    assert WebhookDelivery.objects.get(pk=delivery.pk).processed
