"""Runbook group 5: the draft posted to Chatwoot as a private note (3 tests), plus a
Chatwoot outage while posting it: backoff retries, then the visible retry queue."""

import itertools

import httpx
import pytest

from support import services
from support.models import ApprovalItem, ApprovalStatus, OutboundRetry, RetryStatus
from support.tasks import retry_due, retry_outbound
from tests.support.conftest import SHIPPING_QUESTION, deliveries

MESSAGES_ROUTE = "POST /api/v1/accounts/*/conversations/*/messages"


@pytest.fixture
def conv(chatwoot_standin):
    return chatwoot_standin.seed_conversation(contact_name="Jane Customer")


@pytest.fixture
def ask(connection, post_webhook, chatwoot_standin, conv, articles):
    def _ask(text: str = SHIPPING_QUESTION) -> ApprovalItem:
        payload = chatwoot_standin.make_webhook(
            "message_created", conversation_id=conv["id"], content=text
        )
        assert post_webhook(payload).status_code == 200
        return ApprovalItem.objects.get(chatwoot_message_id=payload["id"])

    return _ask


def test_draft_is_posted_as_a_private_note(ask, chatwoot_standin, conv):
    item = ask()
    [request] = chatwoot_standin.requests_to(MESSAGES_ROUTE)
    assert request.path == f"/api/v1/accounts/1/conversations/{conv['id']}/messages"
    assert request.headers["api_access_token"] == "cw-standin-token"
    assert request.json["message_type"] == "outgoing"
    assert request.json["private"] is True
    assert item.draft_text in request.json["content"]
    assert request.json["source_id"] == services.our_source_id("note", item.pk)
    stored = [m for m in chatwoot_standin.messages(conv["id"]) if m["private"]]
    assert len(stored) == 1 and stored[0]["id"] == item.private_note_id
    assert stored[0]["message_type"] == "outgoing"


def test_note_names_confidence_and_sources(ask, chatwoot_standin):
    item = ask()
    content = chatwoot_standin.requests_to(MESSAGES_ROUTE)[0].json["content"]
    assert "AI draft waiting for approval" in content
    assert "confidence" in content and "Shipping options and delivery times" in content
    assert item.status == ApprovalStatus.PENDING  # posting a note decides nothing


def test_the_notes_own_webhook_is_ignored(ask, chatwoot_standin, conv, post_webhook, connection):
    item = ask()
    echo = chatwoot_standin.make_webhook(
        "message_created",
        kind="private_note",
        conversation_id=conv["id"],
        content=services.private_note_text(item),
    )
    assert post_webhook(echo).status_code == 200
    assert deliveries(connection)[-1].outcome == "ignored:private_note"
    assert ApprovalItem.objects.count() == 1


def test_outage_retries_with_backoff_then_lands_in_the_retry_queue(ask, chatwoot_standin, conv):
    chatwoot_standin.set_fault("status", status=503, route=MESSAGES_ROUTE)
    item = ask()
    # Eager (inside the webhook's request): one attempt, then straight to the retry queue.
    assert len(chatwoot_standin.requests_to(MESSAGES_ROUTE)) == 1
    [retry] = OutboundRetry.objects.all()
    assert retry.operation == "private_note" and retry.object_id == item.pk
    assert retry.status == RetryStatus.QUEUED and retry.retryable
    assert retry.last_error.startswith("HTTP 503")

    # On a worker: the first try and retries after 1, 2, 4, 8 × base, then the same row.
    chatwoot_standin.clear_requests()
    assert services.approval_item_note_post(item=item) is False
    attempts = chatwoot_standin.requests_to(MESSAGES_ROUTE)
    assert len(attempts) == 5
    gaps = [b.time - a.time for a, b in itertools.pairwise(attempts)]
    assert gaps[3] > gaps[0] and gaps[3] >= 0.08  # 8 × 10 ms
    item.refresh_from_db()
    assert item.status == ApprovalStatus.PENDING and item.private_note_id is None
    [retry] = OutboundRetry.objects.all()
    assert retry.status == RetryStatus.QUEUED and retry.attempts == 2

    # Chatwoot is back: the beat task posts the note exactly once.
    chatwoot_standin.clear_faults()
    chatwoot_standin.clear_requests()
    retry.next_attempt_at = retry.created_at
    retry.save()
    assert retry_due() == 1
    assert len(chatwoot_standin.requests_to(MESSAGES_ROUTE)) == 1
    item.refresh_from_db()
    assert item.private_note_id is not None
    retry.refresh_from_db()
    assert retry.status == RetryStatus.DONE
    assert len([m for m in chatwoot_standin.messages(conv["id"]) if m["private"]]) == 1


def test_a_retry_does_not_post_a_note_chatwoot_already_has(ask, chatwoot_standin, conv):
    """The connection dropped after Chatwoot stored the note: the retry finds it by source_id."""
    chatwoot_standin.set_fault("down", route=MESSAGES_ROUTE)
    item = ask()
    retry = OutboundRetry.objects.get()
    assert "without a response" in retry.last_error
    chatwoot_standin.clear_faults()
    stored = httpx.post(  # what Chatwoot had stored from the request whose answer was lost
        f"{chatwoot_standin.url}/api/v1/accounts/1/conversations/{conv['id']}/messages",
        json={
            "content": "note",
            "private": True,
            "source_id": services.our_source_id("note", item.pk),
        },
        headers={"api_access_token": "cw-standin-token"},
    )
    assert stored.status_code == 200
    chatwoot_standin.clear_requests()
    assert retry_outbound(retry_id=retry.pk) is True
    assert not chatwoot_standin.requests_to(MESSAGES_ROUTE)
    item.refresh_from_db()
    assert item.private_note_id == stored.json()["id"]


def test_a_bad_token_is_not_retried_by_beat_but_can_be_retried_by_hand(
    ask, chatwoot_standin, connection
):
    connection.set_api_token("expired-token")
    connection.save()
    item = ask()
    assert len(chatwoot_standin.requests_to(MESSAGES_ROUTE)) == 1  # a 401 is not transient
    retry = OutboundRetry.objects.get()
    assert not retry.retryable and "Invalid Access Token" in retry.last_error
    retry.next_attempt_at = retry.created_at
    retry.save()
    assert retry_due() == 0
    connection.set_api_token("cw-standin-token")
    connection.save()
    assert retry_outbound(retry_id=retry.pk) is True  # what the admin's "Retry now" runs
    item.refresh_from_db()
    assert item.private_note_id is not None
