import secrets

from django.db import models
from django.db.models import Q

from core import crypto
from core.models import BaseModel, TenantOwnedModel


def new_site_key() -> str:
    return "wk_" + secrets.token_urlsafe(18)


def new_identity_secret() -> str:
    return secrets.token_urlsafe(32)


class Position(models.TextChoices):
    RIGHT = "right", "Bottom right"
    LEFT = "left", "Bottom left"


# More proof-of-work bits than this outlast, on a phone, the two minutes a challenge lives.
POW_DIFFICULTY_MAX = 20


class WebChatSite(TenantOwnedModel):
    """One website (or group of domains) that embeds the widget with one public site key."""

    bot = models.ForeignKey(
        "bots.Bot", null=True, blank=True, on_delete=models.SET_NULL, related_name="sites"
    )
    name = models.CharField(max_length=120)
    site_key = models.CharField(max_length=64, unique=True, default=new_site_key)
    # After a rotation the previous key keeps working until this moment (grace period).
    previous_site_key = models.CharField(max_length=64, blank=True, db_index=True)
    previous_key_expires_at = models.DateTimeField(null=True, blank=True)
    identity_secret_encrypted = models.TextField(blank=True, editable=False)
    allowed_domains = models.JSONField(
        default=list,
        blank=True,
        help_text="Origins allowed to embed the widget: example.com, *.example.com, localhost:3000.",
    )
    title = models.CharField(max_length=80, default="Chat with us")
    color = models.CharField(max_length=7, default="#2453d4")
    position = models.CharField(max_length=5, choices=Position.choices, default=Position.RIGHT)
    welcome_message = models.CharField(max_length=500, blank=True, default="Hi! How can we help?")
    launcher_text = models.CharField(max_length=40, blank=True, default="")
    locale = models.CharField(max_length=10, default="en")
    require_consent = models.BooleanField(default=False)
    telemetry_enabled = models.BooleanField(default=True)
    pow_difficulty = models.PositiveSmallIntegerField(
        default=0,
        help_text=f"Proof-of-work bits asked of each new session (0 = off, max {POW_DIFFICULTY_MAX}).",
    )
    is_canary = models.BooleanField(
        default=False, help_text="A low-risk site a tenant can start the rollout on."
    )
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="webchat_site_unique_name"),
            models.CheckConstraint(
                condition=Q(pow_difficulty__lte=POW_DIFFICULTY_MAX),
                name="webchat_site_pow_difficulty_max",
            ),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def identity_secret(self) -> str:
        return crypto.decrypt(self.identity_secret_encrypted)

    def set_identity_secret(self, value: str) -> None:
        self.identity_secret_encrypted = crypto.encrypt(value)


class WebChatSession(TenantOwnedModel):
    # Looked up by (site, visitor_id) and (site, -updated_at), the indexes below.
    site = models.ForeignKey(
        WebChatSite, on_delete=models.CASCADE, related_name="sessions", db_index=False
    )
    visitor_id = models.CharField(max_length=64, db_index=True)
    conversation = models.ForeignKey(
        "crm.Conversation", on_delete=models.CASCADE, related_name="webchat_sessions"
    )
    origin = models.CharField(max_length=255, blank=True)
    page_url = models.TextField(blank=True)
    referrer = models.TextField(blank=True)
    locale = models.CharField(max_length=35, blank=True)
    utm = models.JSONField(default=dict, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    ip_hash = models.CharField(max_length=64, blank=True)
    last_seen_at = models.DateTimeField(db_index=True)
    expires_at = models.DateTimeField()
    anonymized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["site", "visitor_id"]),
            # a site's last successful init (the dashboard's site list and diagnostics)
            models.Index(fields=["site", "-updated_at"]),
        ]

    def __str__(self) -> str:
        return f"session {self.pk} ({self.visitor_id[:8]})"


class EventType(models.TextChoices):
    # Sent by the widget
    WIDGET_LOADED = "widget_loaded"
    LAUNCHER_OPENED = "launcher_opened"
    LAUNCHER_CLOSED = "launcher_closed"
    MESSAGE_SENT = "message_sent"
    MESSAGE_RENDERED = "message_rendered"
    ERROR = "error"
    # Recorded by the server
    SESSION_STARTED = "session_started"
    ORIGIN_DENIED = "origin_denied"
    TOKEN_INVALID = "token_invalid"  # noqa: S105 (an event name, not a secret)
    RATE_LIMITED = "rate_limited"
    CHALLENGE_INVALID = "challenge_invalid"


WIDGET_EVENT_TYPES = frozenset(
    {
        EventType.WIDGET_LOADED,
        EventType.LAUNCHER_OPENED,
        EventType.LAUNCHER_CLOSED,
        EventType.MESSAGE_SENT,
        EventType.MESSAGE_RENDERED,
        EventType.ERROR,
    }
)
INCIDENT_EVENT_TYPES = frozenset(
    {
        EventType.ORIGIN_DENIED,
        EventType.TOKEN_INVALID,
        EventType.RATE_LIMITED,
        EventType.CHALLENGE_INVALID,
    }
)


class WebChatEvent(TenantOwnedModel):
    site = models.ForeignKey(WebChatSite, on_delete=models.CASCADE, related_name="events")
    session = models.ForeignKey(
        WebChatSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    type = models.CharField(max_length=32, choices=EventType.choices)
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["site", "type", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.type} @ {self.created_at:%Y-%m-%d %H:%M}"


class WebChatHourlyRollup(BaseModel):
    """Per-site counts for one hour, recomputed from the raw rows by a beat task."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE)
    site = models.ForeignKey(WebChatSite, on_delete=models.CASCADE, related_name="rollups")
    hour = models.DateTimeField()
    sessions = models.PositiveIntegerField(default=0)
    conversations = models.PositiveIntegerField(default=0)
    messages_in = models.PositiveIntegerField(default=0)
    messages_out = models.PositiveIntegerField(default=0)
    widget_events = models.PositiveIntegerField(default=0)
    error_events = models.PositiveIntegerField(default=0)
    ai_answered = models.PositiveIntegerField(default=0)
    ai_fallback = models.PositiveIntegerField(default=0)
    ai_timeout = models.PositiveIntegerField(default=0)
    ai_error = models.PositiveIntegerField(default=0)
    origin_denied = models.PositiveIntegerField(default=0)
    token_failures = models.PositiveIntegerField(default=0)
    rate_limited = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["site", "hour"], name="webchat_rollup_unique_site_hour")
        ]
        indexes = [models.Index(fields=["tenant", "hour"])]
        ordering = ["-hour"]
