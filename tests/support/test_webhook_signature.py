"""Runbook group 1: webhook signature verification (+ timestamps, unsigned mode, tokens)."""

import json
import time

import pytest

from support.health import connection_warnings
from support.models import ApprovalItem, WebhookDelivery
from tests.factories.support import ChatwootConnectionFactory
from tests.standins.chatwoot import make_webhook, rails_json, sign_webhook
from tests.support.conftest import deliveries


def _error(response) -> str:
    return response.json()["error"]["code"]


def test_valid_signature_is_accepted_and_processed(connection, post_webhook, articles):
    response = post_webhook(make_webhook("message_created", content="How much is shipping?"))
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "accepted"}
    [delivery] = deliveries(connection)
    assert delivery.valid and delivery.signed and delivery.processed
    assert delivery.outcome == "customer_message"
    assert ApprovalItem.objects.filter(connection=connection).count() == 1


def test_signature_with_the_wrong_secret_is_refused(connection, post_webhook):
    response = post_webhook(make_webhook("message_created"), secret="not-the-secret")
    assert response.status_code == 401
    assert _error(response) == "signature_invalid"
    [delivery] = deliveries(connection)
    assert not delivery.valid and delivery.outcome == "signature_invalid"
    assert not ApprovalItem.objects.exists()


def test_tampered_body_is_refused(connection, post_webhook):
    payload = make_webhook("message_created", content="Where is my order?")
    tampered = rails_json({**payload, "content": "Refund me everything"})
    response = post_webhook(payload, tampered_body=tampered)
    assert response.status_code == 401
    assert _error(response) == "signature_invalid"
    assert not ApprovalItem.objects.exists()


def test_hmac_is_over_the_raw_rails_bytes(connection, post_webhook, client):
    """Rails escapes <, > and & as \\u003c…: re-serialising the JSON would change the bytes."""
    payload = make_webhook("message_created", content="Is <b>shipping</b> free & fast?")
    raw = rails_json(payload)
    assert b"\\u003cb\\u003e" in raw and b"\\u0026" in raw
    assert post_webhook(payload).status_code == 200
    # The same payload serialised differently but signed over Rails' bytes is refused.
    ts = str(int(time.time()))
    response = client.post(
        post_webhook.url,
        data=json.dumps(payload).encode(),
        content_type="application/json",
        HTTP_X_CHATWOOT_TIMESTAMP=ts,
        HTTP_X_CHATWOOT_SIGNATURE=sign_webhook("whsec-chatwoot-tests", ts, raw),
        HTTP_X_CHATWOOT_DELIVERY="d-reserialised",
    )
    assert response.status_code == 401


def test_missing_signature_is_refused_unless_unsigned_mode(connection, post_webhook):
    response = post_webhook(make_webhook("message_created"), sign=False)
    assert response.status_code == 401
    assert _error(response) == "signature_missing"
    # unsigned mode is for a Chatwoot that cannot sign: a connection without a secret
    connection.allow_unsigned_webhooks = True
    connection.set_webhook_secret("")
    connection.save()
    response = post_webhook(make_webhook("message_created"), sign=False)
    assert response.status_code == 200
    accepted = deliveries(connection, valid=True)
    assert len(accepted) == 1 and not accepted[0].signed
    assert any("unsigned" in w for w in connection_warnings(connection))


def test_with_a_secret_every_delivery_must_be_signed_even_in_unsigned_mode(
    connection, post_webhook
):
    """Chatwoot signs every delivery once it has a secret: one without a signature is a
    forgery by whoever learnt the webhook URL."""
    connection.allow_unsigned_webhooks = True
    connection.save()
    response = post_webhook(make_webhook("message_created"), sign=False)
    assert response.status_code == 401
    assert _error(response) == "signature_missing"
    assert post_webhook(make_webhook("message_created"), secret="forged").status_code == 401
    assert post_webhook(make_webhook("message_created")).status_code == 200
    assert [d.signed for d in deliveries(connection, valid=True)] == [True]
    assert not any("unsigned" in w for w in connection_warnings(connection))


def test_a_signed_delivery_replayed_under_a_new_delivery_id_is_a_duplicate(
    connection, post_webhook
):
    payload = make_webhook("conversation_status_changed")
    ts = int(time.time())
    first = post_webhook(payload, timestamp=ts, delivery_id="d-1")
    again = post_webhook(payload, timestamp=ts, delivery_id="d-2")
    assert first.status_code == again.status_code == 200
    assert [d.delivery_key for d in deliveries(connection, valid=True)] == ["d-1"]
    # the same event signed anew (another timestamp) is Chatwoot's own retry: the id dedupes
    assert post_webhook(payload, timestamp=ts - 1, delivery_id="d-1").status_code == 200
    assert len(deliveries(connection, valid=True)) == 1


def test_old_and_future_timestamps_are_refused(connection, post_webhook):
    old = int(time.time()) - 301
    response = post_webhook(make_webhook("message_created"), timestamp=old)
    assert response.status_code == 401
    assert _error(response) == "timestamp_expired"
    future = int(time.time()) + 400
    assert post_webhook(make_webhook("message_created"), timestamp=future).status_code == 401
    recent = int(time.time()) - 240
    assert post_webhook(make_webhook("message_created"), timestamp=recent).status_code == 200
    assert post_webhook(make_webhook("message_created"), timestamp="yesterday").status_code == 401
    # digits to str.isdigit() that int() refuses (a header's byte 0xB2 is "²"): a 401, not a 500
    for odd in ("\u00b2", "1\u0663"):
        response = post_webhook(make_webhook("message_created"), timestamp=odd)
        assert response.status_code == 401, response.content
        assert _error(response) == "signature_invalid"


def test_url_token_not_numeric_id_and_unknown_token_is_404(connection, post_webhook):
    assert not connection.webhook_token.isdigit() and len(connection.webhook_token) >= 24
    response = post_webhook(make_webhook("message_created"), token=str(connection.pk))
    assert response.status_code == 404
    assert _error(response) == "unknown_webhook"
    connection.active = False
    connection.save()
    assert post_webhook(make_webhook("message_created")).status_code == 404
    assert not WebhookDelivery.objects.exists()


def test_other_tenants_secret_does_not_open_this_connection(connection, post_webhook, other_tenant):
    other = ChatwootConnectionFactory(tenant=other_tenant, webhook_secret="other-secret")
    response = post_webhook(make_webhook("message_created"), secret="other-secret")
    assert response.status_code == 401
    assert not WebhookDelivery.objects.filter(connection=other).exists()


@pytest.mark.parametrize(
    "body", [b"<html>not json</html>", b"[" * 5000 + b"]" * 5000], ids=["html", "nested deep"]
)
def test_signed_body_that_is_not_json_is_a_400(connection, post_webhook, client, body):
    ts = str(int(time.time()))
    response = client.post(
        post_webhook.url,
        data=body,
        content_type="application/json",
        HTTP_X_CHATWOOT_TIMESTAMP=ts,
        HTTP_X_CHATWOOT_SIGNATURE=sign_webhook("whsec-chatwoot-tests", ts, body),
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_forged_delivery_cannot_squat_a_real_delivery_id(connection, post_webhook, articles):
    payload = make_webhook("message_created", content="How much is shipping?")
    assert post_webhook(payload, delivery_id="d-1", secret="forged").status_code == 401
    response = post_webhook(payload, delivery_id="d-1")
    assert response.json() == {"status": "accepted"}
    assert ApprovalItem.objects.filter(connection=connection).count() == 1
