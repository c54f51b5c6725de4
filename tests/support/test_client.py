"""The typed Chatwoot client against the stand-in: wire format, errors, retries."""

import time
from dataclasses import replace

import pytest

from support.chatwoot.client import ChatwootClient, ChatwootError

MESSAGES = "POST /api/v1/accounts/*/conversations/*/messages"


@pytest.fixture
def cw_client(chatwoot_standin, settings):
    return ChatwootClient(
        base_url=chatwoot_standin.url + "/", account_id=1, api_token="cw-standin-token"
    )


def test_rest_messages_are_read_with_integer_types_and_epoch_times(cw_client, chatwoot_standin):
    conv = chatwoot_standin.seed_conversation()
    chatwoot_standin.make_webhook("message_created", kind="customer", conversation_id=conv["id"])
    posted = cw_client.create_message(
        conversation_id=conv["id"], content="Note", private=True, source_id="replybase:t:1"
    )
    assert posted.message_type == "outgoing" and posted.private
    assert posted.created_at is not None and posted.created_at.tzinfo is not None
    listed = cw_client.list_messages(conversation_id=conv["id"])
    assert [m.message_type for m in listed] == ["incoming", "outgoing"]
    assert (
        cw_client.find_message_by_source_id(conversation_id=conv["id"], source_id="replybase:t:1")
        == posted
    )


def test_contacts_conversations_and_status(cw_client, chatwoot_standin):
    contact = cw_client.create_contact(name="Ann", inbox_id=1, email="ann@example.com")
    assert contact.contact_id == chatwoot_standin.contacts[0]["id"] and contact.source_id
    conversation_id = cw_client.create_conversation(
        source_id=contact.source_id, inbox_id=1, contact_id=contact.contact_id
    )
    assert cw_client.toggle_status(conversation_id=conversation_id, status="resolved") == "resolved"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "HTTP 401: You need to sign in or sign up before continuing."),
        ("wrong", "HTTP 401: Invalid Access Token"),
    ],
)
def test_both_401_shapes_are_read(chatwoot_standin, token, message):
    client = ChatwootClient(base_url=chatwoot_standin.url, account_id=1, api_token=token)
    with pytest.raises(ChatwootError) as failure:
        client.list_messages(conversation_id=1)
    assert failure.value.message == message and failure.value.status == 401
    assert not failure.value.retryable
    assert len(chatwoot_standin.requests) == 1


def test_validation_and_not_found_errors(cw_client, chatwoot_standin):
    cw_client.create_contact(name="Ann", inbox_id=1, email="ann@example.com")
    with pytest.raises(ChatwootError) as failure:
        cw_client.create_contact(name="Ann again", inbox_id=1, email="ann@example.com")
    assert failure.value.status == 422
    assert failure.value.message == "HTTP 422: Email has already been taken"
    with pytest.raises(ChatwootError) as failure:
        cw_client.create_message(conversation_id=999, content="x")
    assert failure.value.message == "HTTP 404: Resource could not be found"


def test_rails_html_404_is_reported_plainly(cw_client):
    result = cw_client.platform_health("/rails/health")
    assert not result.ok and result.status == 404
    assert result.error == "HTTP 404: not found (HTML page)"


@pytest.mark.parametrize("fault", [{"kind": "status", "status": 429}, {"kind": "malformed"}])
def test_transient_failures_are_retried_then_succeed(cw_client, chatwoot_standin, fault):
    conv = chatwoot_standin.seed_conversation()
    kind = fault.pop("kind")
    chatwoot_standin.set_fault(kind, route=MESSAGES, times=2, **fault)
    message = cw_client.create_message(conversation_id=conv["id"], content="Hello")
    assert message.content == "Hello"
    assert len(chatwoot_standin.requests_to(MESSAGES)) == 3


def test_a_hanging_chatwoot_times_out_per_request(chatwoot_standin, settings):
    client = ChatwootClient(
        base_url=chatwoot_standin.url, account_id=1, api_token="cw-standin-token", timeout=0.2
    )
    chatwoot_standin.set_fault("hang", seconds=5)
    with pytest.raises(ChatwootError) as failure:
        client.create_message(conversation_id=1, content="x")
    assert failure.value.message == "Connection timeout after 200ms" and failure.value.retryable
    assert len(chatwoot_standin.requests) == 5


def test_without_backoff_a_call_is_tried_once(chatwoot_standin):
    client = ChatwootClient(
        base_url=chatwoot_standin.url, account_id=1, api_token="cw-standin-token", backoff=False
    )
    chatwoot_standin.set_fault("status", status=503)
    with pytest.raises(ChatwootError) as failure:
        client.create_message(conversation_id=1, content="x")
    assert failure.value.retryable and len(chatwoot_standin.requests) == 1


def test_contacts_and_conversations_are_found_by_our_identifier(cw_client, chatwoot_standin):
    assert cw_client.find_contact(identifier="replybase:1:conversation:4", inbox_id=1) is None
    near = cw_client.create_contact(
        name="Near", inbox_id=1, identifier="replybase:1:conversation:40"
    )
    made = cw_client.create_contact(
        name="Visitor", inbox_id=1, identifier="replybase:1:conversation:4", source_id="ours-4"
    )
    found = cw_client.find_contact(identifier="replybase:1:conversation:4", inbox_id=1)
    assert found == made and found.source_id == "ours-4" and found != near
    assert cw_client.find_contact(identifier="replybase:1:conversation:4", inbox_id=2) == (
        replace(made, source_id="")  # no contact inbox in that inbox
    )

    ours = {"replybase_id": "replybase:1:conversation:4"}
    assert (
        cw_client.find_conversation(
            contact_id=made.contact_id, inbox_id=1, identifier=ours["replybase_id"]
        )
        is None
    )
    cw_client.create_conversation(source_id="ours-4", inbox_id=1, contact_id=made.contact_id)
    conversation_id = cw_client.create_conversation(
        source_id="ours-4", inbox_id=1, contact_id=made.contact_id, custom_attributes=ours
    )
    assert (
        cw_client.find_conversation(
            contact_id=made.contact_id, inbox_id=1, identifier=ours["replybase_id"]
        )
        == conversation_id
    )
    assert (
        cw_client.find_conversation(
            contact_id=made.contact_id, inbox_id=2, identifier=ours["replybase_id"]
        )
        is None
    )
    with pytest.raises(ChatwootError) as failure:
        cw_client.find_conversation(contact_id=999, inbox_id=1, identifier="x")
    assert failure.value.status == 404 and not failure.value.retryable


def test_contact_inboxes_and_contact_updates(cw_client, chatwoot_standin):
    ann = cw_client.create_contact(name="Ann", inbox_id=1, email="ann@example.com")
    bob = cw_client.create_contact(name="Bob", inbox_id=1, identifier="replybase:1:contact:2")
    made = [
        cw_client.create_contact_inbox(contact_id=bob.contact_id, inbox_id=1, source_id=source)
        for source in ("c-5", "c-5", "")
    ]
    assert made[:2] == ["c-5", "c-5"] and made[2]  # found again; a UUID without a source_id
    assert len(chatwoot_standin.contact_inboxes) == 4
    conversation_id = cw_client.create_conversation(
        source_id="c-5", inbox_id=1, contact_id=bob.contact_id
    )
    assert chatwoot_standin.conversations[0]["id"] == conversation_id

    cw_client.update_contact(contact_id=bob.contact_id, name="Bob Ray", email="bob@example.com")
    found = cw_client.find_contact(identifier="replybase:1:contact:2", inbox_id=1)
    assert (found.name, found.email, found.email_attribute) == ("Bob Ray", "bob@example.com", "")
    with pytest.raises(ChatwootError) as failure:
        cw_client.update_contact(contact_id=bob.contact_id, email=ann.email)
    assert failure.value.status == 422 and not failure.value.retryable
    assert failure.value.message == "HTTP 422: Email has already been taken"
    assert chatwoot_standin.last_request.json == {"email": "ann@example.com"}  # only what's given


# -- non-idempotent creates: a retry first looks for what the lost attempt stored ----------

LIST_MESSAGES = "GET /api/v1/accounts/*/conversations/*/messages"
CONVERSATIONS = "POST /api/v1/accounts/*/conversations"
CONTACT_CONVERSATIONS = "GET /api/v1/accounts/*/contacts/*/conversations"


@pytest.fixture
def short_timeout_client(chatwoot_standin):
    return ChatwootClient(
        base_url=chatwoot_standin.url, account_id=1, api_token="cw-standin-token", timeout=0.3
    )


@pytest.mark.parametrize(
    "fault",
    [{"kind": "hang", "seconds": 2}, {"kind": "down"}, {"kind": "status", "status": 504}],
)
def test_a_message_stored_but_unanswered_is_found_not_posted_again(
    short_timeout_client, chatwoot_standin, fault
):
    conv = chatwoot_standin.seed_conversation()
    chatwoot_standin.set_fault_after_apply(fault.pop("kind"), route=MESSAGES, **fault)
    message = short_timeout_client.create_message(
        conversation_id=conv["id"], content="Hello", source_id="replybase:t:msg:1"
    )
    stored = chatwoot_standin.messages(conv["id"])
    assert [m["content"] for m in stored] == ["Hello"]
    assert message.id == stored[0]["id"] and message.source_id == "replybase:t:msg:1"
    assert len(chatwoot_standin.requests_to(MESSAGES)) == 1
    assert len(chatwoot_standin.requests_to(LIST_MESSAGES)) == 1


def test_a_conversation_stored_but_unanswered_is_found_not_created_again(
    short_timeout_client, chatwoot_standin
):
    contact = short_timeout_client.create_contact(name="Ann", inbox_id=1)
    chatwoot_standin.set_fault_after_apply("hang", route=CONVERSATIONS, seconds=2)
    conversation_id = short_timeout_client.create_conversation(
        source_id=contact.source_id,
        inbox_id=1,
        contact_id=contact.contact_id,
        custom_attributes={"replybase_id": "replybase:t:conversation:1"},
    )
    assert [c["id"] for c in chatwoot_standin.conversations] == [conversation_id]
    assert len(chatwoot_standin.requests_to(CONVERSATIONS)) == 1
    assert len(chatwoot_standin.requests_to(CONTACT_CONVERSATIONS)) == 1


def test_a_5xx_that_stored_nothing_is_looked_up_then_posted_once(cw_client, chatwoot_standin):
    conv = chatwoot_standin.seed_conversation()
    chatwoot_standin.set_fault("status", status=500, route=MESSAGES, times=1)
    message = cw_client.create_message(
        conversation_id=conv["id"], content="Hello", source_id="replybase:t:msg:1"
    )
    assert [m["id"] for m in chatwoot_standin.messages(conv["id"])] == [message.id]
    assert len(chatwoot_standin.requests_to(MESSAGES)) == 2
    assert len(chatwoot_standin.requests_to(LIST_MESSAGES)) == 1


def test_refused_or_rate_limited_is_retried_without_a_look_up(
    cw_client, chatwoot_standin, monkeypatch
):
    conv = chatwoot_standin.seed_conversation()
    chatwoot_standin.stop()  # connection refused: the request never left
    real_sleep = time.sleep

    def back_up(seconds):
        chatwoot_standin.start()
        real_sleep(seconds)

    monkeypatch.setattr("support.chatwoot.client.time.sleep", back_up)
    message = cw_client.create_message(
        conversation_id=conv["id"], content="Hello", source_id="replybase:t:msg:1"
    )
    chatwoot_standin.set_fault("status", status=429, route=MESSAGES, times=1)
    again = cw_client.create_message(
        conversation_id=conv["id"], content="Again", source_id="replybase:t:msg:2"
    )
    stored = chatwoot_standin.messages(conv["id"])
    assert [m["id"] for m in stored] == [message.id, again.id]
    assert len(chatwoot_standin.requests_to(MESSAGES)) == 3  # 1 + (429 + 1)
    assert chatwoot_standin.requests_to(LIST_MESSAGES) == []


def test_without_backoff_a_lost_answer_is_not_looked_up(chatwoot_standin):
    client = ChatwootClient(
        base_url=chatwoot_standin.url, account_id=1, api_token="cw-standin-token", backoff=False
    )
    conv = chatwoot_standin.seed_conversation()
    chatwoot_standin.set_fault_after_apply("down", route=MESSAGES)
    with pytest.raises(ChatwootError) as failure:
        client.create_message(conversation_id=conv["id"], content="x", source_id="replybase:t:1")
    assert failure.value.message == "Connection closed without a response"
    assert len(chatwoot_standin.messages(conv["id"])) == 1
    assert len(chatwoot_standin.requests) == 1


def test_calls_share_one_tls_context(cw_client, chatwoot_standin, monkeypatch):
    """httpx builds a TLS context (the whole CA bundle, ~30 ms of CPU) for each call it
    makes with its defaults: thousands of health probes would pay it each time."""
    import ssl

    from core.http import tls_context

    tls_context()  # built once, for the whole process
    built = []
    real = ssl.create_default_context
    monkeypatch.setattr(
        ssl, "create_default_context", lambda *a, **k: built.append(1) or real(*a, **k)
    )
    for _ in range(3):
        assert cw_client.platform_health().ok
        cw_client.profile()
    assert built == []
