from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from crm.models import Conversation, ConversationStatus, Message
from tenants.models import Tenant


def conversation_counts(*, tenant: Tenant) -> dict[str, int]:
    return Conversation.objects.filter(tenant=tenant).aggregate(
        total=Count("id"),
        open=Count("id", filter=Q(status=ConversationStatus.OPEN)),
        handoff=Count("id", filter=Q(status=ConversationStatus.HANDOFF)),
        resolved=Count("id", filter=Q(status=ConversationStatus.RESOLVED)),
    )


def conversation_list(
    *, tenant: Tenant, status: str | None = None, search: str | None = None
) -> QuerySet[Conversation]:
    qs = Conversation.objects.filter(tenant=tenant).select_related("contact")
    if status:
        qs = qs.filter(status=status)
    if search:
        qs = qs.filter(
            Q(messages__text__icontains=search)
            | Q(contact__email__icontains=search)
            | Q(contact__name__icontains=search)
        ).distinct()
    return qs.order_by("-last_message_at", "-id")


def conversation_get(*, tenant: Tenant, conversation_id: int) -> Conversation:
    """The tenant's conversation or 404 (another tenant's looks exactly like a missing one)."""
    return get_object_or_404(
        Conversation.objects.select_related("contact", "bot"), tenant=tenant, pk=conversation_id
    )


def message_list(*, conversation: Conversation) -> QuerySet[Message]:
    return Message.objects.filter(tenant_id=conversation.tenant_id, conversation=conversation)
