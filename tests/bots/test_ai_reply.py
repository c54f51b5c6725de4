"""The AI reply path: scheduling, the (eager) Celery task and the overdue safety net."""

import threading
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from bots.services import AI_WAITING_MAX, conversation_handoff, reply_overdue_resolve
from bots.tasks import ai_reply
from crm.models import Conversation, ConversationStatus
from tests.bots.conftest import bot_replies
from tests.factories import BotFactory, ConversationFactory, MessageFactory, TenantFactory

pytestmark = pytest.mark.django_db


def replies_total(outcome: str) -> float:
    return REGISTRY.get_sample_value("replybase_ai_replies_total", {"outcome": outcome}) or 0.0


def test_unhandled_message_schedules_one_ai_reply_with_metadata(conversation, say, articles):
    answered_before = replies_total("answered")
    message, result = say(conversation, "Do gift cards expire?")
    assert result.replies == [] and result.pending is True
    [reply] = bot_replies(conversation)
    assert reply.text.startswith("Gift cards never expire")
    assert reply.metadata["ai_outcome"] == "answered"
    assert reply.metadata["article_ids"][0] == articles[2].pk
    assert reply.metadata["confidence"] > 0.5
    assert reply.metadata["flow_rule_id"] is None
    assert reply.metadata["quick_replies"] == []
    assert isinstance(reply.metadata["latency_ms"], int)
    assert reply.metadata["reply_to"] == message.pk
    assert conversation.pending_reply_since is None
    assert conversation.bot_state["ai_waiting"] == []
    assert conversation.last_message_at == reply.created_at
    assert replies_total("answered") == answered_before + 1


def test_low_confidence_ai_reply_offers_a_handoff(conversation, say, articles, bot):
    say(conversation, "What is the capital of France?")
    [reply] = bot_replies(conversation)
    assert reply.text == bot.fallback_text
    assert reply.metadata["ai_outcome"] == "fallback"
    assert reply.metadata["quick_replies"] == [
        {"label": "Talk to a person", "value": "Talk to a person"}
    ]
    # Clicking the offer hands the conversation off.
    _, result = say(conversation, "Talk to a person")
    assert result.replies[0].metadata["ai_outcome"] == "handoff"
    assert conversation.status == ConversationStatus.HANDOFF


def test_scheduled_then_task_runs_once_even_if_redelivered(conversation, say, articles):
    message, result = say(conversation, "When are your stores open?", commit=False)
    assert result.pending is True
    assert conversation.pending_reply_since is not None
    assert conversation.bot_state["ai_waiting"] == [message.pk]
    assert bot_replies(conversation) == []
    ai_reply(message_id=message.pk)
    ai_reply(message_id=message.pk)  # acks_late redelivery or a retry: no second reply
    assert len(bot_replies(conversation)) == 1
    ai_reply(message_id=10**9)  # a message that is gone: nothing happens


def test_only_the_latest_messages_are_owed_an_ai_reply_when_the_worker_falls_behind(
    conversation, say, articles
):
    from bots import metrics

    dropped_before = metrics.AI_REPLIES_DROPPED._value.get()
    with capture_logs() as logs:
        asked = [
            say(conversation, f"Do gift cards expire? ({n})", commit=False)[0]
            for n in range(AI_WAITING_MAX + 3)
        ]
    latest = [m.pk for m in asked[-AI_WAITING_MAX:]]
    assert conversation.bot_state["ai_waiting"] == latest
    # every drop is counted; the log tells once per backlog, not once per message
    assert metrics.AI_REPLIES_DROPPED._value.get() - dropped_before == 3
    dropped_logged = [e["message_ids"] for e in logs if e["event"] == "ai_reply.owed_dropped"]
    assert dropped_logged == [[asked[0].pk]]
    assert conversation.pending_reply_since is not None
    for dropped in asked[:3]:
        ai_reply(message_id=dropped.pk)  # its task runs late: nothing is owed any more
    assert bot_replies(conversation) == []
    ai_reply(message_id=asked[-1].pk)
    [reply] = bot_replies(conversation)
    assert reply.metadata["reply_to"] == asked[-1].pk
    conversation.refresh_from_db()
    assert conversation.bot_state["ai_waiting"] == latest[:-1]
    assert conversation.pending_reply_since is not None  # still owed for the others


def test_a_new_backlog_after_the_worker_caught_up_is_logged_again(conversation, say, articles):
    def backlog() -> list:
        with capture_logs() as logs:
            asked = [
                say(conversation, f"Do gift cards expire? ({n})", commit=False)[0]
                for n in range(AI_WAITING_MAX + 2)
            ]
        return asked, [e for e in logs if e["event"] == "ai_reply.owed_dropped"]

    asked, logged = backlog()
    assert len(logged) == 1
    for message in asked[-AI_WAITING_MAX:]:
        ai_reply(message_id=message.pk)  # the worker catches up: nothing owed any more
    conversation.refresh_from_db()
    assert conversation.bot_state["ai_waiting"] == []
    again, logged = backlog()
    assert [e["message_ids"] for e in logged] == [[again[0].pk]]


def test_handoff_while_computing_drops_the_ai_reply(conversation, say, articles):
    message, _ = say(conversation, "When are your stores open?", commit=False)
    conversation_handoff(conversation=conversation, reason="agent took over")
    ai_reply(message_id=message.pk)
    assert bot_replies(conversation) == []
    conversation.refresh_from_db()
    assert conversation.pending_reply_since is None


def test_task_is_configured_for_safety():
    assert ai_reply.acks_late is True
    assert ai_reply.autoretry_for == (OperationalError,)
    assert 0 < ai_reply.max_retries <= 5
    assert ai_reply.soft_time_limit < ai_reply.time_limit
    assert ai_reply.soft_time_limit > 60  # above the largest bot timeout


def _overdue(conversation: Conversation, *, seconds: int) -> None:
    conversation.pending_reply_since = timezone.now() - timedelta(seconds=seconds)
    conversation.save(update_fields=["pending_reply_since"])


def test_reply_overdue_resolve_delivers_the_fallback_once(conversation, say, bot):
    message, _ = say(conversation, "anything", commit=False)  # the worker never runs it
    assert reply_overdue_resolve(conversation=conversation) is None  # not overdue yet
    _overdue(conversation, seconds=bot.ai_timeout_seconds + 4)
    assert reply_overdue_resolve(conversation=conversation) is None  # still within grace
    timeouts_before = replies_total("timeout")
    _overdue(conversation, seconds=bot.ai_timeout_seconds + 6)
    fallback = reply_overdue_resolve(conversation=conversation)
    assert fallback is not None
    assert fallback.text == bot.fallback_text
    assert fallback.metadata["ai_outcome"] == "timeout"
    assert fallback.metadata["reply_to"] == message.pk
    assert fallback.metadata["latency_ms"] >= (bot.ai_timeout_seconds + 6) * 1000
    assert reply_overdue_resolve(conversation=conversation) is None
    stale = Conversation.objects.get(pk=conversation.pk)
    stale.pending_reply_since = timezone.now() - timedelta(minutes=5)  # an old read
    assert reply_overdue_resolve(conversation=stale) is None  # re-checked under the lock
    # The worker coming back later does not answer a second time.
    ai_reply(message_id=message.pk)
    assert bot_replies(conversation) == [fallback]
    assert replies_total("timeout") == timeouts_before + 1
    conversation.refresh_from_db()
    assert conversation.pending_reply_since is None


def test_overdue_on_a_handed_off_conversation_just_clears(tenant, bot):
    conversation = ConversationFactory(
        tenant=tenant,
        bot=bot,
        status=ConversationStatus.HANDOFF,
        pending_reply_since=timezone.now() - timedelta(minutes=5),
    )
    assert reply_overdue_resolve(conversation=conversation) is None
    conversation.refresh_from_db()
    assert conversation.pending_reply_since is None
    assert bot_replies(conversation) == []


@pytest.mark.django_db(transaction=True)
def test_reply_overdue_resolve_is_safe_under_concurrency():
    tenant = TenantFactory()
    conversation = ConversationFactory(tenant=tenant, bot=BotFactory(tenant=tenant))
    message = MessageFactory(conversation=conversation, text="hello?")
    conversation.bot_state = {"ai_waiting": [message.pk]}
    conversation.save(update_fields=["bot_state"])
    _overdue(conversation, seconds=60)
    barrier = threading.Barrier(4)
    results = []

    def poll() -> None:
        try:
            own = Conversation.objects.select_related("bot").get(pk=conversation.pk)
            barrier.wait()
            results.append(reply_overdue_resolve(conversation=own))
        finally:
            connection.close()

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 4
    assert len([r for r in results if r is not None]) == 1
    assert len(bot_replies(conversation)) == 1
