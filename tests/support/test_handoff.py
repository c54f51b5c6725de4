"""Webchat handoff roundtrip: widget → handoff → mirrored into Chatwoot (contact,
conversation, transcript) → later visitor messages forwarded → agent replies back in the
widget → resolved in Chatwoot resolves it here. Retries never duplicate anything."""

import time
from datetime import timedelta

import httpx
import pytest

from crm.models import Contact, Conversation, ConversationStatus, Message
from support.models import ChatwootConversationLink, OutboundRetry, RetryStatus
from support.tasks import retry_due
from tests.factories.support import WEBHOOK_SECRET, ChatwootConnectionFactory
from tests.support.conftest import (
    HUMAN,
    WEBHOOK_PATH,
    deliveries,
    incoming_texts,
    start_and_hand_off,
)
from tests.widget_client import WidgetClient


def _agent_messages(widget_client) -> list[dict]:
    messages = widget_client.poll(after=0).json()["messages"]
    return [m for m in messages if m["sender"] == "agent"]


def test_full_handoff_roundtrip(widget_client, connection, chatwoot_standin, post_webhook):
    conversation = start_and_hand_off(widget_client)

    # Mirrored: a contact and a conversation in the connection's inbox, the transcript in it.
    [contact] = chatwoot_standin.contacts
    assert contact["name"] == f"Website visitor #{conversation.pk}"
    [cw] = chatwoot_standin.conversations
    assert cw["inbox_id"] == connection.inbox_id and cw["status"] == "open"
    link = ChatwootConversationLink.objects.get(conversation=conversation)
    assert link.chatwoot_conversation_id == cw["id"] and link.chatwoot_contact_id == contact["id"]
    transcript = incoming_texts(chatwoot_standin, cw["id"])
    assert transcript[0] == "Hello there"
    assert HUMAN in transcript
    assert transcript[-1].startswith("[Bot] ")  # the bot's handoff message
    assert len(transcript) == conversation.messages.count()

    # Further visitor messages are forwarded, and the bot stays quiet.
    assert widget_client.send("My order number is 1234").json()["replies"] == []
    assert incoming_texts(chatwoot_standin, cw["id"])[-1] == "My order number is 1234"

    # The agent's public reply comes back to the widget (a redelivery changes nothing).
    reply = chatwoot_standin.make_webhook(
        "message_created", kind="agent", conversation_id=cw["id"], content="Hi, Sam here!"
    )
    assert post_webhook(reply).status_code == 200
    assert post_webhook(reply).status_code == 200
    [agent_message] = _agent_messages(widget_client)
    assert agent_message["client_message_id"] is None  # Chatwoot's ids stay ours
    assert agent_message["text"] == "Hi, Sam here!" and agent_message["direction"] == "outbound"
    link.refresh_from_db()
    assert link.first_response_at is not None and link.breached_at is None

    # Private notes on the mirrored conversation stay private.
    note = chatwoot_standin.make_webhook(
        "message_created", kind="private_note", conversation_id=cw["id"], content="VIP"
    )
    post_webhook(note)
    assert len(_agent_messages(widget_client)) == 1

    # Resolving in Chatwoot resolves it here.
    resolved = chatwoot_standin.make_webhook(
        "conversation_status_changed", conversation_id=cw["id"], status="resolved"
    )
    assert post_webhook(resolved).status_code == 200
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.RESOLVED
    assert len(chatwoot_standin.contacts) == 1 and len(chatwoot_standin.conversations) == 1


def test_our_transcript_echoes_are_not_drafted(
    widget_client, connection, chatwoot_standin, post_webhook
):
    start_and_hand_off(widget_client)
    [cw] = chatwoot_standin.conversations
    [first] = [m for m in chatwoot_standin.messages(cw["id"]) if m["content"] == "Hello there"]
    echo = chatwoot_standin.make_webhook(
        "message_created",
        kind="customer",
        conversation_id=cw["id"],
        content="Hello there",
        source_id=first["source_id"],
        id=first["id"],
    )
    post_webhook(echo)
    assert deliveries(connection)[-1].outcome == "ignored:own_message"


def test_chatwoot_outage_during_mirroring_is_retried_without_duplicates(
    widget_client, connection, chatwoot_standin
):
    chatwoot_standin.set_fault(
        "status", status=503, route="POST /api/v1/accounts/*/conversations/*/messages"
    )
    conversation = start_and_hand_off(widget_client)
    [cw] = chatwoot_standin.conversations  # contact and conversation made it
    assert incoming_texts(chatwoot_standin, cw["id"]) == []
    retry = OutboundRetry.objects.get(operation="handoff_sync", object_id=conversation.pk)
    assert retry.status == RetryStatus.QUEUED and "HTTP 503" in retry.last_error

    widget_client.send("Anyone there?")  # forwarded: fails again, same retry row
    assert OutboundRetry.objects.filter(operation="handoff_sync").count() == 1

    chatwoot_standin.clear_faults()
    OutboundRetry.objects.filter(pk=retry.pk).update(next_attempt_at=retry.created_at)
    assert retry_due() == 1
    transcript = incoming_texts(chatwoot_standin, cw["id"])
    assert transcript[0] == "Hello there" and transcript[-1] == "Anyone there?"
    assert len(transcript) == len(set(transcript)) == conversation.messages.count()
    assert len(chatwoot_standin.contacts) == 1 and len(chatwoot_standin.conversations) == 1
    retry.refresh_from_db()
    assert retry.status == RetryStatus.DONE


def test_outage_before_the_contact_exists(widget_client, connection, chatwoot_standin):
    chatwoot_standin.set_fault("down")
    conversation = start_and_hand_off(widget_client)
    link = ChatwootConversationLink.objects.get(conversation=conversation)
    assert link.chatwoot_contact_id is None and link.chatwoot_conversation_id is None
    chatwoot_standin.clear_faults()
    OutboundRetry.objects.update(next_attempt_at=link.created_at)
    retry_due()
    link.refresh_from_db()
    assert link.chatwoot_conversation_id == chatwoot_standin.conversations[0]["id"]
    assert len(chatwoot_standin.contacts) == 1


def test_a_known_email_is_kept_as_an_attribute(widget_client, connection, chatwoot_standin):
    assert widget_client.init().status_code == 200
    conversation = Conversation.objects.get(pk=widget_client.conversation_id)
    conversation.contact = Contact.objects.create(
        tenant=conversation.tenant, name="Ann", email="ann@example.com"
    )
    conversation.save()
    chatwoot_standin.seed_conversation(contact_name="Ann (old)", email="ann@example.com")
    widget_client.send(HUMAN)
    [contact] = [c for c in chatwoot_standin.contacts if c["name"] == "Ann"]
    assert contact["additional_attributes"]["email"] == "ann@example.com"


def test_without_a_chatwoot_connection_handoff_stays_local(widget_client, chatwoot_standin, tenant):
    ChatwootConnectionFactory(tenant=tenant, base_url=chatwoot_standin.url, inbox_id=None)
    conversation = start_and_hand_off(widget_client)
    assert not ChatwootConversationLink.objects.filter(conversation=conversation).exists()
    assert not chatwoot_standin.requests


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_handoff_roundtrip_through_chatwoots_own_webhooks(
    live_server, client, site, chatwoot_standin
):
    """The stand-in sends its webhooks to a live server as Chatwoot would, from its own
    thread; the agent works in Chatwoot's API, the visitor in the widget."""
    connection = ChatwootConnectionFactory(
        tenant=site.tenant, base_url=chatwoot_standin.url, bot=site.bot
    )
    chatwoot_standin.webhook_url = live_server.url + WEBHOOK_PATH.format(
        token=connection.webhook_token
    )
    chatwoot_standin.webhook_secret = WEBHOOK_SECRET
    widget = WidgetClient(client, site.site_key)
    conversation = start_and_hand_off(widget)
    [cw] = chatwoot_standin.conversations
    echoes = len(incoming_texts(chatwoot_standin, cw["id"]))
    chatwoot_standin.wait_for_deliveries(echoes)

    api = f"{chatwoot_standin.url}/api/v1/accounts/1/conversations/{cw['id']}"
    headers = {"api_access_token": "cw-standin-token"}
    sent = httpx.post(
        api + "/messages",
        json={"content": "Hello from Sam", "message_type": "outgoing"},
        headers=headers,
    )
    assert sent.status_code == 200
    deadline = time.monotonic() + 5
    while not _agent_messages(widget) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m["text"] for m in _agent_messages(widget)] == ["Hello from Sam"]

    assert (
        httpx.post(api + "/toggle_status", json={"status": "resolved"}, headers=headers).status_code
        == 200
    )
    deadline = time.monotonic() + 5
    while conversation.status != ConversationStatus.RESOLVED and time.monotonic() < deadline:
        time.sleep(0.05)
        conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.RESOLVED
    # the status change's delivery ends after its commit: wait for its answer and record
    delivered = chatwoot_standin.wait_for_deliveries(echoes + 2)
    assert all(d.get("status") == 200 for d in delivered), delivered
    wanted = {"ignored:own_message", "agent_reply:to_webchat", "status:resolved"}
    deadline = time.monotonic() + 5
    while not wanted <= {d.outcome for d in deliveries(connection)}:
        assert time.monotonic() < deadline, {d.outcome for d in deliveries(connection)}
        time.sleep(0.05)
    assert Message.objects.filter(conversation=conversation, sender_type="agent").count() == 1


def _agent_says(chatwoot_standin, cw, text: str) -> dict:
    """The webhook of an agent's public message in the Chatwoot conversation `cw`."""
    return chatwoot_standin.make_webhook(
        "message_created", kind="agent", conversation_id=cw["id"], content=text
    )


def _resolve_in_chatwoot(chatwoot_standin, post_webhook, conversation, cw) -> None:
    resolved = chatwoot_standin.make_webhook(
        "conversation_status_changed", conversation_id=cw["id"], status="resolved"
    )
    assert post_webhook(resolved).status_code == 200
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.RESOLVED


@pytest.fixture
def mirrored(widget_client, connection, chatwoot_standin):
    """A handed-off conversation and the Chatwoot conversation it is mirrored to."""
    conversation = start_and_hand_off(widget_client)
    [cw] = chatwoot_standin.conversations
    return conversation, cw


def test_an_agents_follow_up_after_resolving_hands_the_conversation_back(
    widget_client, mirrored, chatwoot_standin, post_webhook
):
    conversation, cw = mirrored
    _resolve_in_chatwoot(chatwoot_standin, post_webhook, conversation, cw)

    follow_up = _agent_says(chatwoot_standin, cw, "Did that fix it?")
    assert post_webhook(follow_up).status_code == 200
    assert [m["text"] for m in _agent_messages(widget_client)] == ["Did that fix it?"]
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.HANDOFF

    answer = widget_client.send("No, it still fails")
    assert answer.status_code == 201
    assert answer.json()["replies"] == []  # the agent answers, not the bot
    assert incoming_texts(chatwoot_standin, cw["id"])[-1] == "No, it still fails"
    # a redelivery of the follow-up after the next resolve does not reopen it again
    _resolve_in_chatwoot(chatwoot_standin, post_webhook, conversation, cw)
    post_webhook(follow_up)
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.RESOLVED


def test_a_second_handoff_round_gets_its_own_first_response_sla(
    widget_client, mirrored, chatwoot_standin, post_webhook, django_capture_on_commit_callbacks
):
    from bots.services import conversation_status_set
    from support.sla import is_breached

    conversation, cw = mirrored
    assert post_webhook(_agent_says(chatwoot_standin, cw, "Hi, I'm Ana.")).status_code == 200
    link = ChatwootConversationLink.objects.get(conversation=conversation)
    first_round = link.first_response_at
    assert first_round is not None and link.waiting_since is None
    conversation_status_set(conversation=conversation, status=ConversationStatus.OPEN)
    # back with the bot; later the visitor's case needs a person again (staff hands it off)
    with django_capture_on_commit_callbacks(execute=True):
        conversation_status_set(conversation=conversation, status=ConversationStatus.HANDOFF)
    link.refresh_from_db()
    conversation.refresh_from_db()
    assert link.first_response_at is None and link.breached_at is None
    assert link.waiting_since == conversation.handed_off_at > first_round
    assert is_breached(link, 30, conversation.handed_off_at + timedelta(minutes=31))
    post_webhook(_agent_says(chatwoot_standin, cw, "Ana again: on it."))
    link.refresh_from_db()
    assert link.first_response_at > first_round and link.waiting_since is None


def test_an_open_status_from_chatwoot_does_not_take_back_what_staff_gave_the_bot(
    widget_client, mirrored, chatwoot_standin, post_webhook
):
    from bots.services import conversation_status_set

    conversation, cw = mirrored
    conversation_status_set(conversation=conversation, status=ConversationStatus.OPEN)
    opened = chatwoot_standin.make_webhook(
        "conversation_status_changed", conversation_id=cw["id"], status="open"
    )
    assert post_webhook(opened).status_code == 200
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.OPEN


def test_an_agents_reply_from_before_the_resolve_arriving_late_does_not_reopen(
    widget_client, mirrored, chatwoot_standin, post_webhook
):
    conversation, cw = mirrored
    late = _agent_says(chatwoot_standin, cw, "One more thing")
    time.sleep(0.01)
    _resolve_in_chatwoot(chatwoot_standin, post_webhook, conversation, cw)
    assert post_webhook(late).status_code == 200
    assert "One more thing" in [m["text"] for m in _agent_messages(widget_client)]
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.RESOLVED
