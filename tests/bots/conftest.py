from collections.abc import Callable

import pytest
from django.db import transaction

from bots.services import InboundResult, inbound_handle
from crm.models import Message
from tests.factories import ConversationFactory, MessageFactory
from tests.factories.bots import SAMPLE_ARTICLES, KnowledgeArticleFactory

ARTICLES = SAMPLE_ARTICLES


@pytest.fixture
def articles(tenant):
    return [
        KnowledgeArticleFactory(tenant=tenant, title=title, body=body, tags=tags)
        for title, body, tags in ARTICLES
    ]


@pytest.fixture
def conversation(tenant, bot):
    return ConversationFactory(tenant=tenant, bot=bot)


Say = Callable[..., tuple[Message, InboundResult]]


@pytest.fixture
def say(django_capture_on_commit_callbacks) -> Say:
    """Store a visitor message and handle it as the API does; on-commit work (the eager
    AI task) runs when `commit` is true."""

    def _say(conversation, text: str, *, commit: bool = True) -> tuple[Message, InboundResult]:
        with django_capture_on_commit_callbacks(execute=commit), transaction.atomic():
            message = MessageFactory(conversation=conversation, text=text)
            result = inbound_handle(message=message)
        conversation.refresh_from_db()
        return message, result

    return _say


def bot_replies(conversation) -> list[Message]:
    return list(conversation.messages.filter(direction="outbound").order_by("id"))
