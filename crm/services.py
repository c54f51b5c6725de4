from django.db import transaction
from django.utils import timezone

from core.exceptions import InvalidRequest
from crm.models import Conversation, ConversationStatus


@transaction.atomic
def conversation_set_status(*, conversation: Conversation, status: str) -> Conversation:
    if status not in ConversationStatus.values:
        raise InvalidRequest(f"Unknown status {status!r}.")
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    conversation.status = status
    now = timezone.now()
    fields = ["status", "updated_at"]
    if status == ConversationStatus.RESOLVED:
        conversation.resolved_at = now
        fields.append("resolved_at")
    elif status == ConversationStatus.HANDOFF and conversation.handed_off_at is None:
        conversation.handed_off_at = now
        fields.append("handed_off_at")
    conversation.save(update_fields=fields)
    return conversation
