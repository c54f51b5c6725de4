"""The OpenAI-compatible engine against a real local HTTP server that misbehaves.

Whatever the engine does, the visitor gets a reply within the bot's timeout: the answer,
or the fallback copy with outcome `timeout` / `error`.
"""

import socket
import time

import pytest
from django.db import transaction

from bots import engines
from bots.engines import NO_ANSWER, OpenAIEngine
from bots.models import Engine
from bots.services import inbound_handle
from crm.models import Message
from tests.factories import BotFactory, ConversationFactory, MessageFactory
from tests.factories.bots import KnowledgeArticleFactory

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.django_db]

TIMEOUT = 1  # seconds: the smallest bot timeout allowed
SLACK = 1.5  # loose: thread start, HTTP set-up, database writes on a busy machine


@pytest.fixture
def llm_bot(tenant, llm_standin):
    bot = BotFactory(
        tenant=tenant,
        engine=Engine.OPENAI,
        llm_base_url=llm_standin.base_url,
        llm_model="gpt-4o-mini",
        ai_timeout_seconds=TIMEOUT,
    )
    bot.set_llm_api_key(llm_standin.api_key)
    bot.save()
    KnowledgeArticleFactory(
        tenant=tenant,
        title="Gift cards",
        body="Gift cards never expire. You can check the balance on the gift card page.",
        tags=["gift card"],
    )
    KnowledgeArticleFactory(
        tenant=tenant, title="Store opening hours", body="Stores open 9am to 6pm."
    )
    return bot


def visitor_asks(bot, text: str, django_capture_on_commit_callbacks) -> tuple[Message, float]:
    """The API's path: store the message, handle it, commit (the eager task runs)."""
    conversation = ConversationFactory(tenant=bot.tenant, bot=bot)
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        message = MessageFactory(conversation=conversation, text=text)
        result = inbound_handle(message=message)
    elapsed = time.monotonic() - started
    assert result.pending is True
    [reply] = conversation.messages.filter(direction="outbound")
    return reply, elapsed


def test_hanging_llm_gives_the_fallback_within_the_timeout(
    llm_bot, llm_standin, django_capture_on_commit_callbacks
):
    llm_standin.set_fault("hang", seconds=10)
    reply, elapsed = visitor_asks(
        llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks
    )
    assert reply.text == llm_bot.fallback_text
    assert reply.metadata["ai_outcome"] == "timeout"
    assert reply.metadata["quick_replies"][0]["label"] == "Talk to a person"
    assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + SLACK
    assert len(llm_standin.requests) == 1  # it was really asked


def test_an_llm_dripping_its_answer_lets_go_of_the_engine_thread_soon_after_the_timeout(
    llm_bot, llm_standin
):
    """A server that sends its answer a byte at a time never trips a read timeout; the
    visitor already got the fallback on time (the caller's deadline), and the engine's own
    thread gives up too, one read after its timeout, instead of holding its socket until
    the last byte (a few hundred bytes here: minutes)."""
    llm_standin.set_fault("drip", seconds=0.2)
    engine = engines.engine_for_bot(llm_bot)
    started = time.monotonic()
    with pytest.raises(engines.EngineTimeout):
        engine.answer("Do gift cards expire?")
    assert time.monotonic() - started < TIMEOUT + 0.2 + SLACK
    assert len(llm_standin.requests) == 1


def test_llm_answering_500_gives_the_fallback(
    llm_bot, llm_standin, django_capture_on_commit_callbacks
):
    llm_standin.set_fault("status", status=500)
    reply, elapsed = visitor_asks(
        llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks
    )
    assert (reply.text, reply.metadata["ai_outcome"]) == (llm_bot.fallback_text, "error")
    assert elapsed < TIMEOUT + SLACK


def test_malformed_llm_response_gives_the_fallback(
    llm_bot, llm_standin, django_capture_on_commit_callbacks
):
    llm_standin.set_fault("malformed")
    reply, _ = visitor_asks(llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks)
    assert reply.metadata["ai_outcome"] == "error"


def test_connection_refused_gives_the_fallback(llm_bot, django_capture_on_commit_callbacks):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    llm_bot.llm_base_url = f"http://127.0.0.1:{closed_port}/v1"
    llm_bot.save()
    reply, elapsed = visitor_asks(
        llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks
    )
    assert (reply.text, reply.metadata["ai_outcome"]) == (llm_bot.fallback_text, "error")
    assert elapsed < TIMEOUT + SLACK


def test_engine_crash_gives_the_fallback(llm_bot, monkeypatch, django_capture_on_commit_callbacks):
    def crash(self, question):
        raise ZeroDivisionError("bug in the engine")

    monkeypatch.setattr(OpenAIEngine, "answer", crash)
    reply, _ = visitor_asks(llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks)
    assert (reply.text, reply.metadata["ai_outcome"]) == (llm_bot.fallback_text, "error")


def test_happy_path_sends_key_model_and_context(
    llm_bot, llm_standin, django_capture_on_commit_callbacks
):
    reply, elapsed = visitor_asks(
        llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks
    )
    assert reply.text == llm_standin.reply_text
    assert reply.metadata["ai_outcome"] == "answered"
    gift_cards_id = reply.metadata["article_ids"][0]
    assert reply.metadata["confidence"] > 0
    assert elapsed < TIMEOUT + SLACK

    request = llm_standin.last_request
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {llm_standin.api_key}"
    assert request.json["model"] == "gpt-4o-mini"
    context = [
        m["content"]
        for m in request.json["messages"]
        if m["role"] == "system" and m["content"].startswith("Context:")
    ]
    assert len(context) == 1 and "Gift cards" in context[0]
    assert request.json["messages"][-1] == {"role": "user", "content": "Do gift cards expire?"}
    assert gift_cards_id is not None


def test_model_replies_from_the_context(llm_bot, llm_standin, django_capture_on_commit_callbacks):
    llm_standin.reply_text = None  # the stand-in echoes the first sentence of the context
    reply, _ = visitor_asks(llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks)
    assert "Gift cards" in reply.text


def test_model_without_an_answer_gives_the_fallback(
    llm_bot, llm_standin, django_capture_on_commit_callbacks
):
    llm_standin.reply_text = NO_ANSWER
    reply, _ = visitor_asks(llm_bot, "Do you sell pizza?", django_capture_on_commit_callbacks)
    assert (reply.text, reply.metadata["ai_outcome"]) == (llm_bot.fallback_text, "fallback")


def test_env_key_is_the_fallback_when_the_bot_has_none(
    llm_bot, llm_standin, monkeypatch, django_capture_on_commit_callbacks
):
    llm_bot.llm_api_key_encrypted = ""
    llm_bot.save()
    monkeypatch.setenv("OPENAI_API_KEY", llm_standin.api_key)
    reply, _ = visitor_asks(llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks)
    assert reply.metadata["ai_outcome"] == "answered"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    reply, _ = visitor_asks(llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks)
    assert reply.metadata["ai_outcome"] == "error"  # 401 from the server


def test_a_key_with_a_trailing_newline_works_and_never_reaches_the_logs(
    llm_bot, llm_standin, monkeypatch, caplog, capsys, django_capture_on_commit_callbacks
):
    """A key read from a file or a secret often ends in a newline; httpx then refuses the
    header, quoting it, and that message used to be logged."""
    llm_bot.llm_api_key_encrypted = ""
    llm_bot.save()
    monkeypatch.setenv("OPENAI_API_KEY", llm_standin.api_key + "\n")
    reply, _ = visitor_asks(llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks)
    assert reply.metadata["ai_outcome"] == "answered"  # the newline is not part of the key

    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-SECRET-abc\x01def")  # a header httpx refuses
    reply, _ = visitor_asks(llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks)
    assert reply.metadata["ai_outcome"] == "error"
    logged = caplog.text + "".join(capsys.readouterr())
    assert "ai_reply.engine_error" in logged
    assert "SECRET" not in logged


def test_a_bot_threshold_holds_for_the_llm_engine_too(
    llm_bot, llm_standin, django_capture_on_commit_callbacks
):
    llm_bot.confidence_threshold = 0.99
    llm_bot.save()
    reply, _ = visitor_asks(llm_bot, "Do you sell pizza?", django_capture_on_commit_callbacks)
    assert (reply.text, reply.metadata["ai_outcome"]) == (llm_bot.fallback_text, "fallback")
    assert llm_standin.requests == []  # the model was not asked


def test_an_endless_llm_answer_is_cut_to_a_chat_message(
    llm_bot, llm_standin, django_capture_on_commit_callbacks
):
    # one "token" to the stand-in (no spaces), so max_tokens does not cut it: 480 KB
    llm_standin.reply_text = "Gift-cards-never-expire." * 20_000
    reply, _ = visitor_asks(llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks)
    assert reply.metadata["ai_outcome"] == "answered"
    assert len(reply.text) <= engines.MAX_LLM_REPLY_CHARS
    assert reply.text.startswith("Gift-cards-never-expire.") and reply.text.endswith("…")
    llm_standin.reply_text = "x" * (engines.MAX_LLM_BODY_BYTES + 10)
    reply, _ = visitor_asks(llm_bot, "Do gift cards expire?", django_capture_on_commit_callbacks)
    assert reply.metadata["ai_outcome"] == "error"


def _queued_since(seconds: float, bot) -> Message:
    """A visitor message whose AI task a worker picks up `seconds` after it arrived."""
    from datetime import timedelta

    from django.utils import timezone

    conversation = ConversationFactory(tenant=bot.tenant, bot=bot)
    with transaction.atomic():
        message = MessageFactory(conversation=conversation, text="Do gift cards expire?")
        inbound_handle(message=message)  # owed; its task is not run (no on-commit here)
    Message.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )
    return Message.objects.select_related("conversation__bot").get(pk=message.pk)


def test_time_in_the_queue_comes_off_the_engines_budget(llm_bot, llm_standin):
    """The visitor's timeout runs from their message: a task picked up late gives the
    engine only what is left, and the fallback at once when nothing is."""
    from bots.services import ai_reply_deliver

    llm_standin.set_fault("hang", seconds=10)
    late = _queued_since(TIMEOUT * 0.8, llm_bot)
    started = time.monotonic()
    reply = ai_reply_deliver(message=late)
    assert reply.metadata["ai_outcome"] == "timeout"
    # 0.2 s were left; the whole timeout (what the engine got before) would be 1 s
    assert time.monotonic() - started < TIMEOUT - 0.1
    assert len(llm_standin.requests) == 1

    too_late = _queued_since(TIMEOUT + 0.5, llm_bot)
    started = time.monotonic()
    reply = ai_reply_deliver(message=too_late)
    assert reply.text == llm_bot.fallback_text and reply.metadata["ai_outcome"] == "timeout"
    assert time.monotonic() - started < SLACK
    assert len(llm_standin.requests) == 1  # the engine was not asked again
