"""Runbook groups 3 (knowledge retrieval, 4 tests) and 4 (draft generation, 4 tests)."""

import pytest

from bots.models import Engine
from support.models import ApprovalItem, ApprovalStatus
from tests.factories import BotFactory, KnowledgeArticleFactory
from tests.support.conftest import SHIPPING_QUESTION


@pytest.fixture
def ask(connection, post_webhook, chatwoot_standin):
    """A customer asks `text` in a fresh Chatwoot conversation; returns the approval item."""

    def _ask(text: str) -> ApprovalItem:
        conv = chatwoot_standin.seed_conversation()
        payload = chatwoot_standin.make_webhook(
            "message_created", conversation_id=conv["id"], content=text
        )
        assert post_webhook(payload).status_code == 200
        return ApprovalItem.objects.get(connection=connection, chatwoot_message_id=payload["id"])

    return _ask


# --- group 3: knowledge retrieval -------------------------------------------------------------


def test_retrieval_finds_the_relevant_articles(ask, articles):
    item = ask(SHIPPING_QUESTION)
    titles = [a["title"] for a in item.related_articles]
    assert titles[0] == "Shipping options and delivery times"
    assert item.sources == [{"id": articles[0].pk, "title": articles[0].title}]


def test_retrieval_uses_only_this_tenants_articles(ask, articles, other_tenant):
    KnowledgeArticleFactory(
        tenant=other_tenant,
        title="Secret shipping deal",
        body="Other tenant: standard shipping costs $1 for insiders.",
    )
    item = ask(SHIPPING_QUESTION)
    assert "Secret shipping deal" not in [a["title"] for a in item.related_articles]
    assert "$1 " not in item.draft_text and "$6.95" in item.draft_text


def test_retrieval_ignores_unpublished_articles(ask, tenant):
    KnowledgeArticleFactory(
        tenant=tenant,
        title="Draft gift card policy",
        body="Gift cards expire after one year.",
        published=False,
    )
    item = ask("Do gift cards expire?")
    assert item.related_articles == []
    assert item.draft_text == ""


def test_retrieval_sees_article_edits(ask, articles):
    first = ask(SHIPPING_QUESTION)
    assert "$6.95" in first.draft_text
    article = articles[0]
    article.body = article.body.replace("$6.95", "$7.50")
    article.save()
    second = ask(SHIPPING_QUESTION)
    assert "$7.50" in second.draft_text


# --- group 4: draft generation --------------------------------------------------------------------


def test_draft_from_the_knowledge_engine(ask, articles):
    item = ask(SHIPPING_QUESTION)
    assert item.status == ApprovalStatus.PENDING
    assert item.draft_outcome == "answered"
    assert "$6.95" in item.draft_text
    assert item.draft_confidence is not None and item.draft_confidence >= 0.5
    assert item.draft_latency_ms is not None and item.draft_latency_ms < 3000


def test_no_confident_answer_still_queues_the_message_for_a_human(ask, articles, chatwoot_standin):
    item = ask("Can I bring my parrot to the office party?")
    assert item.status == ApprovalStatus.PENDING
    assert item.draft_text == "" and item.draft_outcome == "fallback"
    assert item.private_note_id is None
    assert not chatwoot_standin.requests_to("POST /api/v1/accounts/*/conversations/*/messages")


def test_draft_from_an_openai_compatible_engine(ask, articles, bot, llm_standin):
    llm_standin.reply_text = "Standard shipping is $6.95 and takes 3-5 business days."
    bot.engine = Engine.OPENAI
    bot.llm_base_url = llm_standin.base_url
    bot.set_llm_api_key(llm_standin.api_key)
    bot.save()
    item = ask(SHIPPING_QUESTION)
    assert item.draft_text == llm_standin.reply_text
    assert item.draft_outcome == "answered"
    [request] = llm_standin.requests_to("POST /v1/chat/completions")
    context = " ".join(m["content"] for m in request.json["messages"])
    assert "Shipping options and delivery times" in context  # the retrieved articles
    assert item.sources[0]["title"] == "Shipping options and delivery times"


def test_engine_failure_leaves_a_human_draft_not_an_error(ask, articles, bot, llm_standin):
    llm_standin.set_fault("status", status=500)
    bot.engine = Engine.OPENAI
    bot.llm_base_url = llm_standin.base_url
    bot.set_llm_api_key(llm_standin.api_key)
    bot.save()
    item = ask(SHIPPING_QUESTION)
    assert item.status == ApprovalStatus.PENDING
    assert item.draft_outcome == "error" and item.draft_text == ""


def test_the_connection_bot_or_else_the_tenants_first_bot_drafts(ask, articles, connection, tenant):
    other_bot = BotFactory(tenant=tenant, name="Aaa first bot", confidence_threshold=0.99)
    connection.bot = None
    connection.save()
    item = ask(SHIPPING_QUESTION)  # "Aaa first bot" is first by name and very strict
    assert item.draft_outcome == "fallback"
    connection.bot = other_bot.__class__.objects.get(name="Helper")
    connection.save()
    assert ask(SHIPPING_QUESTION).draft_outcome == "answered"


def test_no_bot_at_all(ask, articles, connection, bot):
    connection.bot = None
    connection.save()
    bot.delete()
    item = ask(SHIPPING_QUESTION)
    assert item.status == ApprovalStatus.PENDING
    assert item.draft_outcome == "no_bot" and item.draft_text == ""
