"""The knowledge engine, its per-tenant index cache and answer_question's outcomes."""

import time

import pytest
from prometheus_client import REGISTRY

from bots import engines
from bots.engines import EngineReply, KnowledgeEngine, engine_for_bot, knowledge_index_for_tenant
from bots.models import Engine
from bots.services import answer_question
from tests.factories import BotFactory
from tests.factories.bots import KnowledgeArticleFactory

pytestmark = pytest.mark.django_db


def builds() -> float:
    return REGISTRY.get_sample_value("replybase_knowledge_index_builds_total") or 0.0


def test_answers_from_the_tenants_best_article(bot, articles):
    reply = answer_question(bot=bot, question="How much does shipping cost?")
    assert reply.outcome == "answered"
    assert reply.article_ids[0] == articles[0].pk
    assert reply.article_titles[0] == "Shipping options and delivery times"
    assert "$6.95" in reply.text
    assert reply.confidence > 0.5
    assert reply.quick_replies == []


def test_only_the_tenants_own_published_articles_are_used(bot, tenant, other_tenant, articles):
    hidden = KnowledgeArticleFactory(
        tenant=tenant,
        title="Pet policy",
        body="Dogs are welcome in all our stores.",
        published=False,
    )
    foreign = KnowledgeArticleFactory(
        tenant=other_tenant, title="Pets in stores", body="Dogs are welcome in all our stores."
    )
    index = knowledge_index_for_tenant(tenant_id=tenant.pk)
    assert {doc.id for doc in index.docs} == {a.pk for a in articles}
    reply = answer_question(bot=bot, question="Are dogs welcome in your stores?")
    assert hidden.pk not in reply.article_ids and foreign.pk not in reply.article_ids
    assert "Dogs" not in reply.text
    # The other tenant's bot does answer it from its own article.
    other_reply = answer_question(
        bot=BotFactory(tenant=other_tenant), question="Are dogs welcome in your stores?"
    )
    assert other_reply.outcome == "answered" and other_reply.article_ids == [foreign.pk]


def test_threshold_is_respected(tenant, articles):
    question = "How much does shipping cost?"
    confident = answer_question(bot=BotFactory(tenant=tenant), question=question)
    strict = BotFactory(tenant=tenant, confidence_threshold=1.0)
    declined = answer_question(bot=strict, question=question)
    assert confident.outcome == "answered"
    assert declined.outcome == "fallback"
    assert declined.text == strict.fallback_text
    assert declined.confidence == pytest.approx(confident.confidence)
    assert declined.article_ids == []
    lenient = BotFactory(tenant=tenant, confidence_threshold=0.0)
    assert answer_question(bot=lenient, question="can I return my boots?").outcome == "answered"


def test_off_topic_question_gets_the_fallback_and_a_handoff_offer(bot, articles):
    reply = answer_question(bot=bot, question="What is the capital of France?")
    assert reply.outcome == "fallback"
    assert reply.text == bot.fallback_text
    assert reply.quick_replies == [{"label": "Talk to a person", "value": "Talk to a person"}]


def test_handoff_request_and_empty_knowledge_base(bot):
    handoff = answer_question(bot=bot, question="can I talk to a human")
    assert handoff.outcome == "handoff" and handoff.text == bot.handoff_text
    empty = answer_question(bot=bot, question="How much does shipping cost?")
    assert empty.outcome == "fallback"


def test_engine_errors_and_timeouts_map_to_the_fallback(bot, articles, monkeypatch):
    def boom(self, question):
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(KnowledgeEngine, "answer", boom)
    error = answer_question(bot=bot, question="shipping cost?")
    assert (error.outcome, error.text) == ("error", bot.fallback_text)
    assert error.quick_replies == engines.HANDOFF_OFFER

    def slow(self, question):
        time.sleep(3)
        return EngineReply(text="late", confidence=1.0)

    monkeypatch.setattr(KnowledgeEngine, "answer", slow)
    bot.ai_timeout_seconds = 1
    started = time.monotonic()
    timeout = answer_question(bot=bot, question="shipping cost?")
    assert time.monotonic() - started < 2
    assert (timeout.outcome, timeout.text) == ("timeout", bot.fallback_text)


def test_index_is_cached_and_rebuilt_only_when_articles_change(tenant, articles):
    before = builds()
    first = knowledge_index_for_tenant(tenant_id=tenant.pk)
    assert knowledge_index_for_tenant(tenant_id=tenant.pk) is first
    assert builds() == before + 1

    article = articles[2]
    article.body = "Gift cards are valid for ten years."
    article.save()
    edited = knowledge_index_for_tenant(tenant_id=tenant.pk)
    assert edited is not first and builds() == before + 2
    assert "ten years" in next(d.body for d in edited.docs if d.id == article.pk)

    article.published = False
    article.save()
    unpublished = knowledge_index_for_tenant(tenant_id=tenant.pk)
    assert article.pk not in {d.id for d in unpublished.docs} and builds() == before + 3

    articles[3].delete()
    after_delete = knowledge_index_for_tenant(tenant_id=tenant.pk)
    assert len(after_delete.docs) == 2 and builds() == before + 4
    assert knowledge_index_for_tenant(tenant_id=tenant.pk) is after_delete
    assert builds() == before + 4


def test_a_cached_answer_costs_one_query(bot, articles, django_assert_num_queries):
    answer_question(bot=bot, question="warm the cache")
    with django_assert_num_queries(1):
        reply = answer_question(bot=bot, question="When are your stores open?")
    assert reply.outcome == "answered"


def test_engine_for_bot_picks_the_engine_and_key(tenant, monkeypatch):
    assert isinstance(engine_for_bot(BotFactory(tenant=tenant)), KnowledgeEngine)
    llm_bot = BotFactory(tenant=tenant, engine=Engine.OPENAI, llm_model="m1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    engine = engine_for_bot(llm_bot)
    assert isinstance(engine, engines.OpenAIEngine)
    assert engine.api_key == "sk-from-env"
    assert engine.url == "https://api.openai.com/v1/chat/completions"
    llm_bot.set_llm_api_key("sk-bot-own")
    llm_bot.llm_base_url = "http://llm.internal/v1/"
    llm_bot.save()
    llm_bot.refresh_from_db()
    engine = engine_for_bot(llm_bot)
    assert engine.api_key == "sk-bot-own" and engine.model == "m1"
    assert engine.url == "http://llm.internal/v1/chat/completions"
    assert "sk-bot-own" not in llm_bot.llm_api_key_encrypted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Short answer.", "Short answer."),
        ("Hello there friend. And more words here", "Hello there friend.…"),
        ("One. Two three four five six", "One. Two three four…"),
        ("word " * 10, "word word word word…"),
        ("x" * 40, "x" * 19 + "…"),
    ],
)
def test_a_long_answer_is_cut_at_a_sentence_or_a_word(text, expected):
    assert engines._cut(text.strip(), 20) == expected
