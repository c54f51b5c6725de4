from dataclasses import dataclass, field
from datetime import date

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.shortcuts import get_object_or_404

from bots.models import FlowRule, KnowledgeArticle
from core.text import ascii_digits
from crm.models import Contact, Conversation, ConversationStatus, Message, SenderType
from tenants.models import Tenant
from webchat.models import WebChatSession


def conversation_counts(*, tenant: Tenant) -> dict[str, int]:
    return Conversation.objects.filter(tenant=tenant).aggregate(
        total=Count("id"),
        open=Count("id", filter=Q(status=ConversationStatus.OPEN)),
        handoff=Count("id", filter=Q(status=ConversationStatus.HANDOFF)),
        resolved=Count("id", filter=Q(status=ConversationStatus.RESOLVED)),
    )


def conversation_list(
    *,
    tenant: Tenant,
    status: str | None = None,
    search: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    handoff: bool | None = None,
    site_id: int | None = None,
) -> QuerySet[Conversation]:
    """The tenant's conversations, newest activity first, with `site_name` and
    `message_count` annotated (subqueries, so a page of rows costs one query).

    `date_from`/`date_to` bound the day the conversation started (inclusive); `handoff`
    keeps conversations that were (True) or were never (False) handed to a person;
    `site_id` keeps those that came through that site of the tenant.
    """
    qs = Conversation.objects.filter(tenant=tenant).select_related("contact")
    if status:
        qs = qs.filter(status=status)
    if date_from:
        qs = qs.filter(created_at__date__gte=date_from)
    if date_to:
        qs = qs.filter(created_at__date__lte=date_to)
    if handoff is not None:
        qs = qs.filter(handed_off_at__isnull=not handoff)
    if site_id is not None:
        qs = qs.filter(
            Exists(
                WebChatSession.objects.filter(
                    tenant=tenant, conversation_id=OuterRef("pk"), site_id=site_id
                )
            )
        )
    if search:
        matches = (
            Q(messages__text__icontains=search)
            | Q(contact__email__icontains=search)
            | Q(contact__name__icontains=search)
            | Q(external_session_id=search)
        )
        if ascii_digits(search) and len(search) <= 18:
            matches |= Q(pk=int(search))
        qs = qs.filter(pk__in=Conversation.objects.filter(matches, tenant=tenant).values("pk"))
    first_session = WebChatSession.objects.filter(conversation_id=OuterRef("pk")).order_by("id")
    qs = qs.annotate(
        site_name=Subquery(first_session.values("site__name")[:1]),
        message_count=Subquery(
            Message.objects.filter(conversation_id=OuterRef("pk"))
            .order_by()
            .values("conversation_id")
            .annotate(n=Count("id"))
            .values("n")[:1]
        ),
    )
    return qs.order_by(F("last_message_at").desc(nulls_last=True), "-id")


def conversation_get(*, tenant: Tenant, conversation_id: int) -> Conversation:
    """The tenant's conversation or 404 (another tenant's looks exactly like a missing one)."""
    return get_object_or_404(
        Conversation.objects.select_related("contact", "bot"), tenant=tenant, pk=conversation_id
    )


def conversation_workspace_of_member(*, user, conversation_id: int) -> Tenant | None:
    """The workspace holding `conversation_id` when `user` is a member of it (a link from
    an email opened while another of their workspaces is chosen), else None."""
    conversation = (
        Conversation.objects.filter(pk=conversation_id, tenant__memberships__user=user)
        .select_related("tenant")
        .first()
    )
    return conversation.tenant if conversation is not None else None


def contact_shared(*, contact: Contact, conversation: Conversation) -> bool:
    """Does another conversation of the tenant have this contact?"""
    return (
        Conversation.objects.filter(tenant_id=conversation.tenant_id, contact=contact)
        .exclude(pk=conversation.pk)
        .exists()
    )


def message_list(*, conversation: Conversation) -> QuerySet[Message]:
    return Message.objects.filter(tenant_id=conversation.tenant_id, conversation=conversation)


def conversation_sessions(*, conversation: Conversation) -> list[WebChatSession]:
    """The widget sessions of a conversation: where the visitor came from (source metadata)."""
    return list(
        WebChatSession.objects.filter(tenant_id=conversation.tenant_id, conversation=conversation)
        .select_related("site")
        .order_by("id")
    )


@dataclass
class ReplyOutcome:
    """What the engine did for one bot reply (from the message's metadata)."""

    outcome: str
    confidence: float | None
    articles: list[KnowledgeArticle] = field(default_factory=list)
    missing_articles: int = 0
    flow_rule: FlowRule | None = None
    latency_ms: int | None = None


def _float_or_none(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


# Messages a conversation page shows at once; earlier ones are a link away.
TRANSCRIPT_PAGE_SIZE = 200


@dataclass
class TranscriptPage:
    rows: list[tuple[Message, "ReplyOutcome | None"]]
    earlier_before: int | None  # `before` for the page of earlier messages (None: none)


def transcript_page(
    *, conversation: Conversation, before: int | None = None, size: int = TRANSCRIPT_PAGE_SIZE
) -> TranscriptPage:
    """The latest `size` messages (before the message id `before`), in order."""
    messages = message_list(conversation=conversation).order_by("-id")
    if before is not None:
        messages = messages.filter(id__lt=before)
    latest = list(messages[: size + 1])
    shown = latest[:size][::-1]
    earlier = shown[0].pk if len(latest) > size else None
    return TranscriptPage(
        rows=transcript(conversation=conversation, messages=shown), earlier_before=earlier
    )


def transcript(
    *, conversation: Conversation, messages: list[Message] | None = None
) -> list[tuple[Message, ReplyOutcome | None]]:
    """Every message in order (or the given ones), with the AI outcome of each bot reply.

    Articles and flow rules named in the metadata are fetched in two queries, from this
    tenant only; ids that no longer exist (a deleted article) are counted, not shown.
    """
    if messages is None:
        messages = list(message_list(conversation=conversation))
    article_ids: set[int] = set()
    rule_ids: set[int] = set()
    for m in messages:
        meta = m.metadata if isinstance(m.metadata, dict) else {}
        if m.sender_type == SenderType.BOT:
            article_ids.update(i for i in meta.get("article_ids") or [] if isinstance(i, int))
            if isinstance(meta.get("flow_rule_id"), int):
                rule_ids.add(meta["flow_rule_id"])
    articles = (
        {
            a.pk: a
            for a in KnowledgeArticle.objects.filter(
                tenant_id=conversation.tenant_id, pk__in=article_ids
            ).only("id", "title")
        }
        if article_ids
        else {}
    )
    rules = (
        {
            r.pk: r
            for r in FlowRule.objects.filter(
                tenant_id=conversation.tenant_id, pk__in=rule_ids
            ).only("id", "name", "bot_id")
        }
        if rule_ids
        else {}
    )
    rows = []
    for m in messages:
        meta = m.metadata if isinstance(m.metadata, dict) else {}
        outcome = None
        if m.sender_type == SenderType.BOT and meta.get("ai_outcome"):
            ids = [i for i in meta.get("article_ids") or [] if isinstance(i, int)]
            latency = meta.get("latency_ms")
            outcome = ReplyOutcome(
                outcome=str(meta["ai_outcome"]),
                confidence=_float_or_none(meta.get("confidence")),
                articles=[articles[i] for i in ids if i in articles],
                missing_articles=sum(1 for i in ids if i not in articles),
                flow_rule=rules.get(meta.get("flow_rule_id")),
                latency_ms=latency if isinstance(latency, int) else None,
            )
        rows.append((m, outcome))
    return rows
