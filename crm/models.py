from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from core.indexes import NullsOrderIndex
from core.models import TenantOwnedModel


class Channel(models.TextChoices):
    WEB = "web", "Web"
    FACEBOOK = "facebook", "Facebook"
    TELEGRAM = "telegram", "Telegram"
    WHATSAPP = "whatsapp", "WhatsApp"


class Contact(TenantOwnedModel):
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    external_id = models.CharField(
        max_length=200, blank=True, help_text="Verified user id from the tenant's own system."
    )
    anonymized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "external_id"],
                condition=~Q(external_id=""),
                name="contact_unique_external_id_per_tenant",
            )
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.external_id or f"Contact {self.pk}"


class ConversationStatus(models.TextChoices):
    OPEN = "open", "Open"
    HANDOFF = "handoff", "Handed off"
    RESOLVED = "resolved", "Resolved"


class Conversation(TenantOwnedModel):
    # Every visitor message updates its conversation's row, and that update writes an entry
    # into each of the table's indexes (last_message_at changes, so it is never a HOT
    # update): the indexes here are only those a query uses. The tenant leads the
    # composite index below, which serves lookups (and cascades) by tenant alone; nothing
    # looks conversations up by updated_at or last_message_at alone, and the inbox search
    # matches external_session_id inside an OR no index would serve.
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)
    channel = models.CharField(
        max_length=20,
        choices=Channel.choices,
        default=Channel.WEB,
        error_messages={
            "invalid_choice": "Unknown channel %(value)r; use one of web, facebook, telegram, whatsapp."
        },
    )
    channel_id = models.CharField(
        max_length=200, null=True, blank=True, help_text="Required for non-web channels."
    )
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    bot = models.ForeignKey(
        "bots.Bot", null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    status = models.CharField(
        max_length=20, choices=ConversationStatus.choices, default=ConversationStatus.OPEN
    )
    external_session_id = models.CharField(max_length=100, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    handed_off_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Set while an AI reply is being computed; the engine clears it when it answers.
    pending_reply_since = models.DateTimeField(null=True, blank=True)
    # Small per-conversation state of the flow engine (e.g. waiting for an email address).
    bot_state = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(channel__in=Channel.values),
                name="conversation_channel_valid",
            ),
            models.CheckConstraint(
                condition=Q(channel=Channel.WEB)
                | (Q(channel_id__isnull=False) & ~Q(channel_id="")),
                name="conversation_channel_id_required_unless_web",
                violation_error_message="A non-web conversation needs a channel_id.",
            ),
        ]
        # The inbox: a tenant's conversations newest first, as `conversation_list` orders
        # them (NULLS LAST, then id), read in index order instead of sorting all of them.
        indexes = [
            NullsOrderIndex(
                "tenant",
                F("last_message_at").desc(nulls_last=True),
                F("id").desc(),
                name="conversation_inbox",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} conversation {self.pk}"

    def _normalize_channel(self) -> None:
        if isinstance(self.channel, str):
            self.channel = self.channel.strip().lower()

    def clean_fields(self, exclude=None) -> None:
        self._normalize_channel()
        super().clean_fields(exclude=exclude)

    def save(self, *args, **kwargs) -> None:
        self._normalize_channel()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        super().clean()
        if self.channel != Channel.WEB and not self.channel_id:
            raise ValidationError(
                {"channel_id": f"A {self.channel} conversation needs a channel_id."}
            )


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class SenderType(models.TextChoices):
    VISITOR = "visitor", "Visitor"
    BOT = "bot", "Bot"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"


class Message(TenantOwnedModel):
    # Written on every message: the (conversation, id) index serves every lookup by
    # conversation, and nothing looks messages up by updated_at.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    updated_at = models.DateTimeField(auto_now=True)
    direction = models.CharField(max_length=10, choices=Direction.choices)
    sender_type = models.CharField(max_length=10, choices=SenderType.choices)
    text = models.TextField()
    client_message_id = models.CharField(max_length=64, null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_message_id"],
                condition=Q(client_message_id__isnull=False),
                name="message_unique_client_id_per_conversation",
            )
        ]
        indexes = [models.Index(fields=["conversation", "id"])]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.sender_type}: {self.text[:40]}"
