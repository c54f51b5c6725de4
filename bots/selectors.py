"""Reads of the bots app; every query is scoped by tenant."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

from django.db.models import Count, Max, Q, QuerySet
from django.shortcuts import get_object_or_404

from bots.models import Bot, FlowRule, KnowledgeArticle
from bots.retrieval import Doc
from crm.models import Direction, Message
from tenants.models import Tenant

# What identifies a tenant's published knowledge base at a point in time.
KnowledgeSignature = tuple[int, datetime | None]


# Active rules per (tenant, bot, rules version), kept in this process: the version moves on
# every rule save/delete (bots.signals), so a changed rule set is a new key at once and the
# engine runs no rules query per visitor message. Bounded: the oldest entries go first.
_ACTIVE_RULES: OrderedDict[tuple[int, int, int], tuple[FlowRule, ...]] = OrderedDict()
_ACTIVE_RULES_MAX = 2048
_ACTIVE_RULES_LOCK = threading.Lock()


def flow_rule_list_active(*, bot: Bot) -> tuple[FlowRule, ...]:
    """The bot's active rules in evaluation order (treat them as read-only)."""
    key = (bot.tenant_id, bot.pk, bot.flow_rules_version)
    with _ACTIVE_RULES_LOCK:
        rules = _ACTIVE_RULES.get(key)
        if rules is not None:
            _ACTIVE_RULES.move_to_end(key)
            return rules
    rules = tuple(
        FlowRule.objects.filter(tenant_id=bot.tenant_id, bot=bot, active=True).order_by(
            "position", "id"
        )
    )
    with _ACTIVE_RULES_LOCK:
        _ACTIVE_RULES[key] = rules
        while len(_ACTIVE_RULES) > _ACTIVE_RULES_MAX:
            _ACTIVE_RULES.popitem(last=False)
    return rules


def flow_rule_get(*, tenant_id: int, rule_id: int) -> FlowRule | None:
    return FlowRule.objects.filter(tenant_id=tenant_id, pk=rule_id).first()


def bot_list(*, tenant: Tenant) -> QuerySet[Bot]:
    return Bot.objects.filter(tenant=tenant).order_by("name", "id")


def knowledge_article_list(
    *, tenant: Tenant, search: str | None = None, published: bool | None = None
) -> QuerySet[KnowledgeArticle]:
    qs = KnowledgeArticle.objects.filter(tenant=tenant)
    if published is not None:
        qs = qs.filter(published=published)
    if search:
        qs = qs.filter(Q(title__icontains=search) | Q(body__icontains=search))
    return qs.order_by("title")


def knowledge_article_get(*, tenant: Tenant, article_id: int) -> KnowledgeArticle:
    """The tenant's article or 404 (another tenant's looks exactly like a missing one)."""
    return get_object_or_404(KnowledgeArticle, tenant=tenant, pk=article_id)


def knowledge_signature(*, tenant_id: int) -> KnowledgeSignature:
    """(count, newest updated_at) of the published articles: one cheap aggregate query.

    It changes whenever an article is published, unpublished, added, deleted or edited
    through `save()`; bulk `update()` calls must bump `updated_at` themselves.
    """
    row = KnowledgeArticle.objects.filter(tenant_id=tenant_id, published=True).aggregate(
        count=Count("id"), newest=Max("updated_at")
    )
    return row["count"], row["newest"]


def knowledge_docs(*, tenant_id: int) -> list[Doc]:
    """The tenant's published articles as retrieval documents, in a stable order."""
    rows = (
        KnowledgeArticle.objects.filter(tenant_id=tenant_id, published=True)
        .order_by("id")
        .values_list("id", "title", "body", "tags")
    )
    return [
        Doc(id=pk, title=title, body=body, tags=tuple(str(t) for t in (tags or [])))
        for pk, title, body, tags in rows
    ]


def message_is_first_from_visitor(*, message: Message) -> bool:
    """True when no earlier inbound message exists in the conversation."""
    return not Message.objects.filter(
        tenant_id=message.tenant_id,
        conversation_id=message.conversation_id,
        direction=Direction.INBOUND,
        id__lt=message.id,
    ).exists()


def message_get_for_ai_reply(*, message_id: int) -> Message | None:
    """The inbound message an AI reply was scheduled for, with its conversation and bot."""
    message = (
        Message.objects.select_related("conversation__bot", "tenant")
        .filter(pk=message_id, direction=Direction.INBOUND)
        .first()
    )
    if message is None or message.conversation.tenant_id != message.tenant_id:
        return None
    return message
