"""Webchat handoff when things go wrong between us and Chatwoot:

- the process dies after Chatwoot created the contact or the conversation but before we
  stored its id: the next attempt finds it (by our identifier) instead of making another;
- in embedded mode (eager Celery) an unreachable Chatwoot costs the visitor's request one
  attempt, not the backoff retries: the sync waits in the retry queue and lands later."""

import time

import pytest
from django.core.cache import cache, caches

from core.cache import RedisCache
from core.locks import lock_acquire, lock_release
from crm.models import Conversation, ConversationStatus, Message, SenderType
from support import services
from support.chatwoot.client import ChatwootClient
from support.models import ChatwootConversationLink, OutboundRetry, RetryStatus
from support.tasks import OUTBOUND_TIME_LIMIT, retry_due, sync_handoff
from tests.support.conftest import HUMAN, incoming_texts, start_and_hand_off

FILTER_ROUTE = "POST /api/v1/accounts/*/contacts/filter"
LIST_ROUTE = "GET /api/v1/accounts/*/conversations/*/messages"
MESSAGES_ROUTE = "POST /api/v1/accounts/*/conversations/*/messages"


def _visitor_wrote(conversation: Conversation, text: str) -> Message:
    """A visitor message stored in the conversation (as the widget's POST stores it)."""
    return Message.objects.create(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        direction="inbound",
        sender_type=SenderType.VISITOR,
        text=text,
    )


class SimulatedCrash(Exception):
    """The process died here."""


def _crash_once_when_storing(monkeypatch, field: str) -> list[str]:
    """The first save of `field` on a link raises, as if the process died right there."""
    crashed: list[str] = []
    save = ChatwootConversationLink.save

    def crashing_save(self, *args, **kwargs):
        if not crashed and field in (kwargs.get("update_fields") or ()):
            crashed.append(field)
            raise SimulatedCrash(field)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(ChatwootConversationLink, "save", crashing_save)
    return crashed


# --- idempotent contact and conversation -----------------------------------------------------


@pytest.mark.parametrize("field", ["chatwoot_contact_id", "chatwoot_conversation_id"])
def test_a_crash_before_storing_chatwoots_id_does_not_make_a_second_one(
    widget_client, connection, chatwoot_standin, monkeypatch, field
):
    crashed = _crash_once_when_storing(monkeypatch, field)
    assert widget_client.init().status_code == 200
    assert widget_client.send("Hello there").status_code == 201
    with pytest.raises(SimulatedCrash):
        widget_client.send(HUMAN)  # the eager mirror task dies inside the request
    assert crashed == [field]
    conversation = Conversation.objects.get(pk=widget_client.conversation_id)
    assert conversation.status == ConversationStatus.HANDOFF
    link = ChatwootConversationLink.objects.get(conversation=conversation)
    assert getattr(link, field) is None  # Chatwoot has it, we never stored its id
    [contact] = chatwoot_standin.contacts

    # The task runs again (a redelivery after the crash, or the next visitor message).
    assert sync_handoff.delay(conversation_id=conversation.pk).get() is True
    assert widget_client.send("Still there?").status_code == 201

    assert len(chatwoot_standin.contacts) == 1 and len(chatwoot_standin.conversations) == 1
    [cw] = chatwoot_standin.conversations
    link.refresh_from_db()
    assert link.chatwoot_contact_id == contact["id"] and link.chatwoot_conversation_id == cw["id"]
    identifier = services.handoff_identifier(conversation)
    assert identifier == (
        f"replybase:{services.installation_namespace()}:"
        f"{conversation.tenant_id}:conversation:{conversation.pk}"
    )
    assert contact["identifier"] == cw["custom_attributes"]["replybase_id"] == identifier
    transcript = incoming_texts(chatwoot_standin, cw["id"])
    assert transcript[0] == "Hello there" and transcript[-1] == "Still there?"
    assert len(transcript) == len(set(transcript)) == conversation.messages.count()
    assert not OutboundRetry.objects.filter(status=RetryStatus.QUEUED).exists()


def test_a_lost_link_finds_the_same_contact_conversation_and_messages(
    widget_client, connection, chatwoot_standin
):
    conversation = start_and_hand_off(widget_client)
    [contact], [cw] = chatwoot_standin.contacts, chatwoot_standin.conversations
    posted = incoming_texts(chatwoot_standin, cw["id"])
    lost = ChatwootConversationLink.objects.get(conversation=conversation)
    lost.delete()

    result = services.handoff_sync(conversation_id=conversation.pk)

    assert result.ok and result.posted == 0  # every message was already there
    assert result.link.chatwoot_contact_id == contact["id"]
    assert result.link.chatwoot_conversation_id == cw["id"]
    assert len(chatwoot_standin.contacts) == 1 and len(chatwoot_standin.conversations) == 1
    # The conversation was found, so no contact inbox was made for the new link either.
    assert [ci["source_id"] for ci in chatwoot_standin.contact_inboxes] == [lost.contact_source_id]
    assert incoming_texts(chatwoot_standin, cw["id"]) == posted


def test_a_lost_link_of_a_long_conversation_posts_no_duplicate(
    widget_client, connection, chatwoot_standin
):
    """Chatwoot lists a conversation's latest 20 messages: the look-up for what is
    already there pages back (`before=`) through all 30 instead of re-posting the oldest."""
    conversation = start_and_hand_off(widget_client)
    for n in range(27):
        Message.objects.create(
            tenant=conversation.tenant,
            conversation=conversation,
            direction="inbound",
            sender_type=SenderType.VISITOR,
            text=f"Visitor message {n}",
        )
    assert services.handoff_sync(conversation_id=conversation.pk).ok
    [cw] = chatwoot_standin.conversations
    posted = incoming_texts(chatwoot_standin, cw["id"])
    assert len(posted) == conversation.messages.count() >= 30
    ChatwootConversationLink.objects.filter(conversation=conversation).delete()

    result = services.handoff_sync(conversation_id=conversation.pk)

    assert result.ok and result.posted == 0
    assert result.link.chatwoot_conversation_id == cw["id"]
    assert incoming_texts(chatwoot_standin, cw["id"]) == posted
    assert len(chatwoot_standin.requests_to(LIST_ROUTE)) >= 2  # it paged back


def _wait_for_incoming(standin, conversation_id, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(incoming_texts(standin, conversation_id)) < count:
        assert time.monotonic() < deadline, "Chatwoot never stored the timed-out message"
        time.sleep(0.05)


def test_a_visitor_message_after_a_timed_out_post_does_not_post_it_twice(
    widget_client, connection, chatwoot_standin, settings
):
    """The first post reaches Chatwoot but its answer times out, so it is parked for
    retry; the visitor's next message (a worker's sync, not the retry) looks first."""
    settings.CHATWOOT_HTTP_TIMEOUT = 0.5
    chatwoot_standin.set_fault("slow", seconds=1, route=MESSAGES_ROUTE, times=1)
    conversation = start_and_hand_off(widget_client)
    assert OutboundRetry.objects.filter(
        operation="handoff_sync", object_id=conversation.pk, status=RetryStatus.QUEUED
    ).exists()
    [cw] = chatwoot_standin.conversations
    _wait_for_incoming(chatwoot_standin, cw["id"], 1)  # Chatwoot did store it
    _visitor_wrote(conversation, "Anyone there?")

    assert services.handoff_sync(conversation_id=conversation.pk).ok

    transcript = incoming_texts(chatwoot_standin, cw["id"])
    assert transcript[0] == "Hello there" and transcript[-1] == "Anyone there?"
    assert len(transcript) == len(set(transcript)) == conversation.messages.count()


def test_a_crash_after_a_post_before_storing_it_does_not_post_it_twice(
    widget_client, connection, chatwoot_standin, monkeypatch
):
    """Chatwoot stored the message, we died before noting it (no retry row): the next
    sync sees that an attempt was started for it and looks first."""
    crashed = _crash_once_when_storing(monkeypatch, "last_synced_message_id")
    assert widget_client.init().status_code == 200
    assert widget_client.send("Hello there").status_code == 201
    with pytest.raises(SimulatedCrash):
        widget_client.send(HUMAN)
    assert crashed and not OutboundRetry.objects.exists()
    conversation = Conversation.objects.get(pk=widget_client.conversation_id)

    assert services.handoff_sync(conversation_id=conversation.pk).ok

    [cw] = chatwoot_standin.conversations
    transcript = incoming_texts(chatwoot_standin, cw["id"])
    assert len(transcript) == len(set(transcript)) == conversation.messages.count()


def test_a_contact_made_by_a_concurrent_attempt_is_found_after_the_422(
    widget_client, connection, chatwoot_standin, monkeypatch
):
    """Two workers looked, found nothing, and both created: the second's 422 on the
    identifier sends it looking again instead of failing."""
    filter_calls = []
    find = services.ChatwootClient.find_contact

    def racing_find(self, *, identifier, inbox_id):
        filter_calls.append(identifier)
        if len(filter_calls) == 1:
            # The other worker's create lands between our look-up and our create.
            self.create_contact(name="Other worker", inbox_id=inbox_id, identifier=identifier)
            return None
        return find(self, identifier=identifier, inbox_id=inbox_id)

    monkeypatch.setattr(services.ChatwootClient, "find_contact", racing_find)
    conversation = start_and_hand_off(widget_client)
    assert len(filter_calls) == 2
    [contact] = chatwoot_standin.contacts
    link = ChatwootConversationLink.objects.get(conversation=conversation)
    assert link.chatwoot_contact_id == contact["id"]
    assert len(chatwoot_standin.conversations) == 1


# --- the per-conversation sync lock ------------------------------------------------------------


def test_a_sync_releases_only_its_own_lock(widget_client, connection, monkeypatch):
    """The lock outlives the task's hard time limit; if it still expired mid-sync and
    another worker took it, this sync's `finally` leaves that worker's lock alone."""
    conversation = start_and_hand_off(widget_client)
    key = f"support:handoff-sync:{conversation.pk}"
    redis = cache._cache.get_client(write=True)
    seen = {}
    locked = services._handoff_sync_locked

    def expiring_sync(conversation, **kwargs):
        seen["ttl"] = redis.ttl(cache.make_key(key))
        cache.delete(key)  # it expired ...
        assert cache.add(key, "another-worker", 60)  # ... and another worker took it
        return locked(conversation, **kwargs)

    monkeypatch.setattr(services, "_handoff_sync_locked", expiring_sync)
    assert services.handoff_sync(conversation_id=conversation.pk).ok

    assert seen["ttl"] >= OUTBOUND_TIME_LIMIT
    assert cache.get(key) == "another-worker"
    cache.delete(key)


def test_a_sync_releases_its_own_lock(widget_client, connection):
    conversation = start_and_hand_off(widget_client)
    assert services.handoff_sync(conversation_id=conversation.pk).ok
    assert cache.get(f"support:handoff-sync:{conversation.pk}") is None


def test_a_message_stored_while_a_sync_runs_is_posted_by_that_sync(
    widget_client, connection, chatwoot_standin, monkeypatch
):
    """The visitor writes while a slow sync holds the lock: their message's own sync finds
    it taken (and may give up waiting), so the running sync posts it in another round."""
    conversation = start_and_hand_off(widget_client)
    [cw] = chatwoot_standin.conversations
    post = ChatwootClient.create_message
    written = []

    def post_while_the_visitor_writes(self, **kwargs):
        answer = post(self, **kwargs)
        if not written:
            written.append(_visitor_wrote(conversation, "Hello? Is anyone reading this?"))
        return answer

    monkeypatch.setattr(ChatwootClient, "create_message", post_while_the_visitor_writes)
    assert widget_client.send("My order never came").status_code == 201  # forwarded: a sync
    transcript = incoming_texts(chatwoot_standin, cw["id"])
    assert transcript[-2] == "My order never came"
    assert transcript[-1] == "Hello? Is anyone reading this?"
    assert len(transcript) == len(set(transcript))
    link = ChatwootConversationLink.objects.get(conversation=conversation)
    assert link.last_synced_message_id == written[0].pk


def test_the_lock_is_released_by_its_owner_only_atomically_on_redis(monkeypatch):
    """On Redis the release is one compare-and-delete script, never a GET then a DEL."""
    key = "support:test-lock"
    token = lock_acquire(key=key, seconds=60)
    assert token and lock_acquire(key=key, seconds=60) is None
    monkeypatch.setattr(type(cache._cache), "delete", None)  # no plain delete is made
    assert not lock_release(key=key, token="someone-else")
    assert cache.get(key) == token
    assert lock_release(key=key, token=token)
    assert cache.get(key) is None


@pytest.mark.parametrize("owner", [True, False])
def test_the_lock_on_a_cache_other_than_redis(settings, owner):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert not isinstance(caches["default"], RedisCache)
    key = "support:test-lock"
    token = lock_acquire(key=key, seconds=60)
    assert token
    assert lock_release(key=key, token=token if owner else "someone-else") is owner
    assert (cache.get(key) is None) is owner


# --- eager mode: an unreachable Chatwoot does not hold the visitor's request -------------------


@pytest.mark.parametrize("fault", ["hang", "down"])
def test_an_unreachable_chatwoot_costs_the_handoff_request_one_attempt(
    widget_client, connection, chatwoot_standin, settings, fault
):
    settings.CHATWOOT_HTTP_TIMEOUT = 0.5
    settings.CHATWOOT_RETRY_BASE_SECONDS = 1.0  # the real backoff: 15 s of sleeps per call
    chatwoot_standin.set_fault(fault, seconds=5)
    started = time.monotonic()
    conversation = start_and_hand_off(widget_client)
    elapsed = time.monotonic() - started

    # One attempt in the request (the contact look-up), then the retry queue.
    assert len(chatwoot_standin.requests) == 1
    assert elapsed < 5  # generous: one 0.5 s timeout at most
    assert chatwoot_standin.requests_to(FILTER_ROUTE)
    retry = OutboundRetry.objects.get(operation="handoff_sync", object_id=conversation.pk)
    assert retry.status == RetryStatus.QUEUED and retry.retryable and retry.attempts == 1
    assert retry.next_attempt_at > retry.created_at

    # Until that retry is due, a further visitor message calls nothing in its request.
    assert widget_client.send("Anyone there?").status_code == 201
    assert len(chatwoot_standin.requests) == 1
    assert OutboundRetry.objects.filter(operation="handoff_sync").count() == 1

    # Chatwoot is back: beat's retry mirrors everything, once.
    chatwoot_standin.clear_faults()
    OutboundRetry.objects.filter(pk=retry.pk).update(next_attempt_at=retry.created_at)
    assert retry_due() == 1
    retry.refresh_from_db()
    assert retry.status == RetryStatus.DONE
    [contact], [cw] = chatwoot_standin.contacts, chatwoot_standin.conversations
    link = ChatwootConversationLink.objects.get(conversation=conversation)
    assert link.chatwoot_contact_id == contact["id"] and link.chatwoot_conversation_id == cw["id"]
    transcript = incoming_texts(chatwoot_standin, cw["id"])
    assert transcript[0] == "Hello there" and transcript[-1] == "Anyone there?"
    assert len(transcript) == len(set(transcript)) == conversation.messages.count()


def test_a_due_retry_is_attempted_once_by_the_next_visitor_message(
    widget_client, connection, chatwoot_standin
):
    """Embedded mode runs no beat: once the parked retry is due, the visitor's next
    message makes one attempt (and, still failing, pushes the retry further out)."""
    chatwoot_standin.set_fault("down")
    conversation = start_and_hand_off(widget_client)
    retry = OutboundRetry.objects.get(operation="handoff_sync", object_id=conversation.pk)
    OutboundRetry.objects.filter(pk=retry.pk).update(next_attempt_at=retry.created_at)
    chatwoot_standin.clear_requests()

    assert widget_client.send("Hello?").status_code == 201
    assert len(chatwoot_standin.requests) == 1
    retry.refresh_from_db()
    assert retry.attempts == 2 and retry.next_attempt_at > retry.created_at

    chatwoot_standin.clear_faults()
    OutboundRetry.objects.filter(pk=retry.pk).update(next_attempt_at=retry.created_at)
    assert widget_client.send("Now?").status_code == 201
    [cw] = chatwoot_standin.conversations
    assert incoming_texts(chatwoot_standin, cw["id"])[-1] == "Now?"
    retry.refresh_from_db()
    assert retry.status == RetryStatus.DONE


def test_on_a_worker_the_backoff_retries_stay(connection, chatwoot_standin, widget_client):
    """Not inline (a worker): each call still tries five times before parking."""
    chatwoot_standin.set_fault("down")
    conversation = start_and_hand_off(widget_client)
    chatwoot_standin.clear_requests()
    result = services.handoff_sync(conversation_id=conversation.pk, from_retry=True)
    assert not result.ok
    assert len(chatwoot_standin.requests_to(FILTER_ROUTE)) == 5


# --- an agent in the conversation before we know its id -----------------------------------------

CONVERSATIONS_ROUTE = "POST /api/v1/accounts/*/conversations"


def _handed_off_with_the_answer_lost(widget_client, chatwoot_standin):
    """Chatwoot creates the conversation but its answer is lost: the sync is parked,
    with the mirrored link still waiting for the Chatwoot id."""
    chatwoot_standin.set_fault_after_apply("status", status=504, route=CONVERSATIONS_ROUTE)
    conversation = start_and_hand_off(widget_client)
    [cw] = chatwoot_standin.conversations
    link = ChatwootConversationLink.objects.get(conversation=conversation)
    assert link.chatwoot_conversation_id is None
    assert OutboundRetry.objects.filter(status=RetryStatus.QUEUED).exists()
    return conversation, cw, link


def _retry_now_and_expect_the_transcript(conversation, cw, link, chatwoot_standin):
    OutboundRetry.objects.update(next_attempt_at=link.created_at)
    retry_due()
    assert not OutboundRetry.objects.filter(status=RetryStatus.QUEUED).exists()
    assert ChatwootConversationLink.objects.get().chatwoot_conversation_id == cw["id"]
    assert len(chatwoot_standin.conversations) == 1
    transcript = incoming_texts(chatwoot_standin, cw["id"])
    assert transcript[0] == "Hello there" and HUMAN in transcript
    assert (
        len(transcript)
        == len(set(transcript))
        == conversation.messages.exclude(sender_type=SenderType.AGENT).count()
    )


def test_an_agents_reply_to_the_conversation_whose_id_we_lost_reaches_the_visitor(
    widget_client, connection, chatwoot_standin, post_webhook
):
    conversation, cw, link = _handed_off_with_the_answer_lost(widget_client, chatwoot_standin)
    reply = chatwoot_standin.make_webhook(
        "message_created", kind="agent", conversation_id=cw["id"], content="Hi, I'm here."
    )
    assert post_webhook(reply).status_code == 200

    link.refresh_from_db()
    assert link.chatwoot_conversation_id == cw["id"]  # the webhook named it (our identifier)
    assert ChatwootConversationLink.objects.count() == 1
    agent = Message.objects.filter(conversation=conversation, sender_type=SenderType.AGENT)
    assert list(agent.values_list("text", flat=True)) == ["Hi, I'm here."]
    _retry_now_and_expect_the_transcript(conversation, cw, link, chatwoot_standin)


def test_a_link_a_webhook_made_without_our_identifier_gives_way_to_the_mirrored_one(
    widget_client, connection, chatwoot_standin, post_webhook
):
    conversation, cw, link = _handed_off_with_the_answer_lost(widget_client, chatwoot_standin)
    reply = chatwoot_standin.make_webhook(
        "message_created", kind="agent", conversation_id=cw["id"], content="Hi, I'm here."
    )
    reply["conversation"]["custom_attributes"] = {}  # an agent cleared the attribute
    assert post_webhook(reply).status_code == 200
    assert ChatwootConversationLink.objects.filter(conversation=None).count() == 1

    _retry_now_and_expect_the_transcript(conversation, cw, link, chatwoot_standin)
    assert widget_client.send("Still there?").status_code == 201
    assert incoming_texts(chatwoot_standin, cw["id"])[-1] == "Still there?"
