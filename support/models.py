"""Chatwoot support: connections, health checks, raw webhook deliveries, conversation links,
the draft approval queue, the outbound retry queue and sent alerts.

External ids (Chatwoot conversation, contact and message ids, webhook delivery ids) sit
under unique constraints, so a redelivered webhook or a retried task cannot create a
second row for the same thing.
"""

from __future__ import annotations

import calendar
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from core import crypto
from core.models import BaseModel, TenantOwnedModel


def new_webhook_token() -> str:
    """The unguessable path segment of a connection's webhook URL."""
    return secrets.token_urlsafe(24)


def default_sla_minutes() -> int:
    return settings.CHATWOOT_SLA_MINUTES


class ChatwootConnection(TenantOwnedModel):
    """One Chatwoot account a tenant's support team works in."""

    name = models.CharField(max_length=120, default="Chatwoot")
    base_url = models.URLField(blank=True, help_text="e.g. https://chatwoot.example.com")
    account_id = models.PositiveIntegerField(null=True, blank=True)
    api_token_encrypted = models.TextField(blank=True, editable=False)
    token_from_env = models.BooleanField(
        default=False,
        help_text="Read the API access token from CHATWOOT_TOKEN instead of storing it.",
    )
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    webhook_token = models.CharField(
        max_length=64, unique=True, default=new_webhook_token, editable=False
    )
    allow_unsigned_webhooks = models.BooleanField(
        default=False,
        help_text="Chatwoot before 4.11 signs nothing: without a webhook secret, accept "
        "unsigned deliveries, with the webhook URL as the only credential (shown as a "
        "warning). Once a secret is set, every delivery must be signed.",
    )
    inbox_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="Inbox that handed-off webchat conversations go to."
    )
    bot = models.ForeignKey(
        "bots.Bot",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Drafts come from this bot's engine (empty: the tenant's first bot).",
    )
    sla_minutes = models.PositiveIntegerField(
        default=default_sla_minutes, validators=[MinValueValidator(1), MaxValueValidator(10080)]
    )
    health_path = models.CharField(
        max_length=200,
        default="/health",
        help_text="Platform health path: /health on current Chatwoot (/rails/health is gone).",
    )
    embed_token = models.CharField(
        max_length=200,
        blank=True,
        help_text="Chatwoot website-widget token (CHATWOOT_EMBED_TOKEN).",
    )
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"], name="chatwoot_connection_unique_name"
            )
        ]
        ordering = ["tenant__name", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def api_token(self) -> str:
        if self.token_from_env:
            return settings.CHATWOOT_TOKEN
        return crypto.decrypt(self.api_token_encrypted)

    def set_api_token(self, value: str) -> None:
        self.api_token_encrypted = crypto.encrypt(value)

    @property
    def webhook_secret(self) -> str:
        return crypto.decrypt(self.webhook_secret_encrypted)

    def set_webhook_secret(self, value: str) -> None:
        self.webhook_secret_encrypted = crypto.encrypt(value)

    def missing_settings(self) -> list[str]:
        """What a health check needs and is not configured."""
        missing = []
        if not self.base_url:
            missing.append("base URL")
        if not self.account_id:
            missing.append("account id")
        if not self.api_token:
            missing.append("API access token")
        return missing

    @property
    def webhook_unsigned(self) -> bool:
        """True when a delivery without a signature is accepted."""
        return self.allow_unsigned_webhooks and not self.webhook_secret


class Recurrence(models.TextChoices):
    NONE = "none", "Once"
    WEEKLY = "weekly", "Every week (same weekday and time)"
    MONTHLY = "monthly", "Every month (same nth weekday, e.g. 2nd Tuesday)"


class MaintenanceWindow(TenantOwnedModel):
    """While a window is on, failed health checks are expected and alert nobody."""

    connection = models.ForeignKey(
        ChatwootConnection, on_delete=models.CASCADE, related_name="maintenance_windows"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    recurrence = models.CharField(
        max_length=10, choices=Recurrence.choices, default=Recurrence.NONE
    )
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")),
                name="maintenance_window_ends_after_start",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_recurrence_display()} from {self.starts_at:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        super().clean()
        if self.starts_at and self.ends_at:
            if self.ends_at <= self.starts_at:
                raise ValidationError({"ends_at": "The window must end after it starts."})
            if self.recurrence != Recurrence.NONE and self.ends_at - self.starts_at > timedelta(
                days=6
            ):
                raise ValidationError({"ends_at": "A recurring window lasts at most 6 days."})
        if self.connection_id and self.tenant_id is None:
            self.tenant_id = self.connection.tenant_id

    def covers(self, at: datetime) -> bool:
        """True when `at` falls inside this window (or one of its recurrences)."""
        duration = self.ends_at - self.starts_at
        if self.recurrence == Recurrence.NONE:
            return self.starts_at <= at < self.ends_at
        if at < self.starts_at:
            return False
        if self.recurrence == Recurrence.WEEKLY:
            offset = (at - self.starts_at) % timedelta(days=7)
            return offset < duration
        # Monthly: the same nth weekday (1st..5th) at the same time of day. Check this
        # month's and last month's occurrence (a window may run over a month's end).
        nth = (self.starts_at.day - 1) // 7
        for months_back in (0, 1):
            year, month = at.year, at.month - months_back
            if month == 0:
                year, month = year - 1, 12
            start = _nth_weekday(year, month, self.starts_at.weekday(), nth)
            if start is None:
                continue
            start = self.starts_at.replace(year=year, month=month, day=start)
            if start <= at < start + duration:
                return True
        return False

    def save(self, *args, **kwargs) -> None:
        if self.tenant_id is None and self.connection_id is not None:
            self.tenant_id = self.connection.tenant_id
        super().save(*args, **kwargs)


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> int | None:
    """Day of month of the (nth+1)-th `weekday` in the month, or None (no 5th Tuesday)."""
    first_weekday, days = calendar.monthrange(year, month)
    day = 1 + (weekday - first_weekday) % 7 + 7 * nth
    return day if day <= days else None


class HealthCheck(TenantOwnedModel):
    """One run of the two health probes against a connection (exit codes 0–4)."""

    connection = models.ForeignKey(
        ChatwootConnection, on_delete=models.CASCADE, related_name="health_checks"
    )
    exit_code = models.PositiveSmallIntegerField()
    platform_ok = models.BooleanField(null=True)
    platform_status = models.PositiveSmallIntegerField(null=True, blank=True)
    platform_ms = models.PositiveIntegerField(null=True, blank=True)
    platform_error = models.TextField(blank=True)
    api_ok = models.BooleanField(null=True)
    api_status = models.PositiveSmallIntegerField(null=True, blank=True)
    api_ms = models.PositiveIntegerField(null=True, blank=True)
    api_error = models.TextField(blank=True)
    in_maintenance = models.BooleanField(
        default=False, help_text="Ran in a maintenance window: failures were expected."
    )
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    artifact = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [models.Index(fields=["connection", "-created_at"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"health check {self.pk}: exit {self.exit_code}"

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


class WebhookDelivery(TenantOwnedModel):
    """A raw Chatwoot webhook delivery, stored before anything is done with it."""

    connection = models.ForeignKey(
        ChatwootConnection, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    # X-Chatwoot-Delivery, or event + message/conversation id when it is missing.
    delivery_key = models.CharField(max_length=200)
    event = models.CharField(max_length=60, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True)
    valid = models.BooleanField(default=False)
    signed = models.BooleanField(default=False)
    processed = models.BooleanField(default=False)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=60, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            # Only accepted deliveries take a key: a forged request cannot squat a real id.
            models.UniqueConstraint(
                fields=["connection", "delivery_key"],
                condition=Q(valid=True),
                name="webhook_delivery_unique_key",
            )
        ]
        indexes = [
            models.Index(fields=["processed", "valid", "created_at"]),
            models.Index(fields=["connection", "-created_at"]),
        ]
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event or 'delivery'} {self.delivery_key[:40]}"


class ChatwootStatus(models.TextChoices):
    OPEN = "open", "Open"
    PENDING = "pending", "Pending"
    RESOLVED = "resolved", "Resolved"
    SNOOZED = "snoozed", "Snoozed"


class ChatwootConversationLink(TenantOwnedModel):
    """A Chatwoot conversation we know of: its SLA clock and, when it was mirrored from a
    webchat handoff, the webchat conversation it belongs to."""

    connection = models.ForeignKey(
        ChatwootConnection, on_delete=models.CASCADE, related_name="conversation_links"
    )
    chatwoot_conversation_id = models.PositiveBigIntegerField(null=True, blank=True)
    chatwoot_contact_id = models.PositiveBigIntegerField(null=True, blank=True)
    contact_source_id = models.CharField(max_length=255, blank=True)
    conversation = models.ForeignKey(
        "crm.Conversation",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="chatwoot_links",
    )
    contact_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=10, choices=ChatwootStatus.choices, default=ChatwootStatus.OPEN
    )
    first_customer_message_at = models.DateTimeField(null=True, blank=True)
    last_customer_message_at = models.DateTimeField(null=True, blank=True)
    waiting_since = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Webchat messages up to this id have been posted to Chatwoot (mirrored conversations).
    last_synced_message_id = models.BigIntegerField(default=0)
    # A post was started for the webchat message of this id: above last_synced_message_id,
    # it may be in Chatwoot without us knowing (a timed-out answer, a crash), so the next
    # sync looks before it posts again.
    attempted_message_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "chatwoot_conversation_id"],
                condition=Q(chatwoot_conversation_id__isnull=False),
                name="chatwoot_link_unique_conversation_id",
            ),
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(conversation__isnull=False),
                name="chatwoot_link_unique_webchat_conversation",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "first_response_at"]),
            models.Index(fields=["status", "breached_at", "first_response_at"]),
        ]

    def __str__(self) -> str:
        return f"Chatwoot conversation {self.chatwoot_conversation_id or '(not yet created)'}"

    @property
    def mirrored(self) -> bool:
        return self.conversation_id is not None


class ApprovalStatus(models.TextChoices):
    DRAFTING = "drafting", "Drafting"
    PENDING = "pending", "Waiting for approval"
    APPROVED = "approved", "Approved, sending"
    SENT = "sent", "Sent"
    REJECTED = "rejected", "Rejected"
    SUPERSEDED = "superseded", "Superseded"


OPEN_APPROVAL_STATUSES = (ApprovalStatus.DRAFTING, ApprovalStatus.PENDING)


class ApprovalItem(TenantOwnedModel):
    """An AI draft for one customer message, waiting for a human to approve or reject it."""

    connection = models.ForeignKey(
        ChatwootConnection, on_delete=models.CASCADE, related_name="approval_items"
    )
    link = models.ForeignKey(
        ChatwootConversationLink, on_delete=models.CASCADE, related_name="approval_items"
    )
    chatwoot_message_id = models.PositiveBigIntegerField()
    customer_text = models.TextField()
    received_at = models.DateTimeField(db_index=True)  # data retention's clock
    due_at = models.DateTimeField(db_index=True)
    status = models.CharField(
        max_length=12, choices=ApprovalStatus.choices, default=ApprovalStatus.DRAFTING
    )
    draft_text = models.TextField(blank=True)
    draft_outcome = models.CharField(max_length=20, blank=True)
    draft_confidence = models.FloatField(null=True, blank=True)
    draft_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    sources = models.JSONField(default=list, blank=True)  # [{"id", "title"}] the draft used
    related_articles = models.JSONField(default=list, blank=True)  # top retrieval matches
    private_note_id = models.PositiveBigIntegerField(null=True, blank=True)
    final_text = models.TextField(blank=True)
    edited = models.BooleanField(default=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.TextField(blank=True)
    reply_message_id = models.PositiveBigIntegerField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # A post of the note / the reply was started: it may be in Chatwoot without us knowing
    # (a lost answer, a crash or a database error before its bookkeeping), so the next
    # attempt looks for it (by source_id) before it posts again.
    note_attempted_at = models.DateTimeField(null=True, blank=True, editable=False)
    reply_attempted_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Data retention redacted its texts (emails and phone numbers) after the tenant's period.
    anonymized_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "chatwoot_message_id"], name="approval_item_unique_message"
            )
        ]
        indexes = [models.Index(fields=["tenant", "status", "due_at"])]
        ordering = ["due_at", "id"]

    def __str__(self) -> str:
        return f"draft {self.pk} ({self.status})"


class RetryOperation(models.TextChoices):
    PRIVATE_NOTE = "private_note", "Post the draft as a private note"
    REPLY = "reply", "Send the approved reply"
    HANDOFF_SYNC = "handoff_sync", "Mirror a webchat handoff"


class RetryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    DONE = "done", "Done"
    FAILED = "failed", "Gave up"


class OutboundRetry(TenantOwnedModel):
    """A call to Chatwoot that failed after its backoff retries, kept to be retried."""

    connection = models.ForeignKey(
        ChatwootConnection, on_delete=models.CASCADE, related_name="retries"
    )
    operation = models.CharField(max_length=20, choices=RetryOperation.choices)
    object_id = models.PositiveBigIntegerField(help_text="Approval item or conversation link id.")
    status = models.CharField(
        max_length=10, choices=RetryStatus.choices, default=RetryStatus.QUEUED
    )
    retryable = models.BooleanField(
        default=True, help_text="Transient failure: beat retries it. Otherwise retry by hand."
    )
    attempts = models.PositiveSmallIntegerField(default=1)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(db_index=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["operation", "object_id"],
                condition=Q(status="queued"),
                name="outbound_retry_unique_queued",
            )
        ]
        indexes = [models.Index(fields=["status", "retryable", "next_attempt_at"])]
        ordering = ["next_attempt_at"]
        verbose_name_plural = "outbound retries"

    def __str__(self) -> str:
        return f"{self.operation} #{self.object_id} ({self.status})"


class AlertLevel(models.IntegerChoices):
    WARNING = 1, "Level 1"
    PAGE = 2, "Level 2 (page)"


class SupportAlert(BaseModel):
    """An alert we sent (or suppressed) to the Slack-compatible incoming webhook."""

    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE)
    kind = models.CharField(max_length=40)
    level = models.PositiveSmallIntegerField(choices=AlertLevel.choices, default=AlertLevel.WARNING)
    text = models.TextField()
    delivered = models.BooleanField(default=False)
    suppressed = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    # Recorded, not yet posted: a run killed before its post leaves it for the next run.
    pending = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(pending=True),
                name="support_alert_pending",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} ({self.created_at:%Y-%m-%d %H:%M})"
