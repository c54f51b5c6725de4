"""Public widget API shapes. Never reused for staff APIs (that would leak fields)."""

import re

from django.core.validators import ProhibitNullCharactersValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core import exceptions as core_errors
from core.text import MAX_TEXT, clean_text
from crm.models import Direction, SenderType
from support.services import CHATWOOT_CLIENT_ID_PREFIX
from webchat import exceptions as webchat_errors
from webchat.models import WIDGET_EVENT_TYPES, Position
from webchat.tokens import POW_ALGORITHM

EVENT_TYPES = sorted(WIDGET_EVENT_TYPES)  # what a widget may report

# Every `error.code` the public API answers with: its own errors, and the framework's for
# a wrong method, an Accept header it cannot satisfy or an unknown path.
ERROR_CODES = (
    *(
        error.code
        for error in (
            core_errors.InvalidRequest,
            core_errors.PayloadTooLarge,
            core_errors.RateLimited,
            webchat_errors.UnknownSite,
            webchat_errors.OriginNotAllowed,
            webchat_errors.ChallengeInvalid,
            webchat_errors.IdentityInvalid,
            webchat_errors.TokenInvalid,
            webchat_errors.TokenExpired,
            webchat_errors.ConversationNotFound,
            webchat_errors.WebchatDisabled,
        )
    ),
    "method_not_allowed",
    "not_acceptable",
    "not_found",
)


class UtmSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=200, required=False, allow_blank=True)
    medium = serializers.CharField(max_length=200, required=False, allow_blank=True)
    campaign = serializers.CharField(max_length=200, required=False, allow_blank=True)
    term = serializers.CharField(max_length=200, required=False, allow_blank=True)
    content = serializers.CharField(max_length=200, required=False, allow_blank=True)


class PageSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    referrer = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    locale = serializers.CharField(max_length=35, required=False, allow_blank=True, default="")
    utm = UtmSerializer(required=False)


class ConfigQuerySerializer(serializers.Serializer):
    site_key = serializers.CharField(max_length=64)


class SiteConfigSerializer(serializers.Serializer):
    title = serializers.CharField()
    color = serializers.CharField()
    position = serializers.ChoiceField(choices=Position.choices)
    welcome_message = serializers.CharField()
    launcher_text = serializers.CharField()
    require_consent = serializers.BooleanField()
    telemetry = serializers.BooleanField()
    locale = serializers.CharField()


class PowSerializer(serializers.Serializer):
    algorithm = serializers.ChoiceField(choices=[POW_ALGORITHM])
    difficulty = serializers.IntegerField()
    salt = serializers.CharField()


class ConfigOutputSerializer(serializers.Serializer):
    site = SiteConfigSerializer()
    challenge = serializers.CharField()
    challenge_expires_at = serializers.DateTimeField()
    pow = PowSerializer(allow_null=True)


class InitInputSerializer(serializers.Serializer):
    site_key = serializers.CharField(max_length=64)
    challenge = serializers.CharField(max_length=1024)
    pow_solution = serializers.IntegerField(required=False, min_value=0, max_value=2**40)
    visitor_id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    session_token = serializers.CharField(
        max_length=1024, required=False, allow_blank=True, default=""
    )
    conversation_id = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**62
    )
    user_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    user_hash = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    page = PageSerializer(required=False)

    def validate(self, attrs):
        if bool(attrs.get("user_id")) != bool(attrs.get("user_hash")):
            raise serializers.ValidationError("user_id and user_hash go together.")
        return attrs


class QuickReplySerializer(serializers.Serializer):
    label = serializers.CharField()
    value = serializers.CharField()


class MessageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    conversation_id = serializers.IntegerField()
    direction = serializers.ChoiceField(choices=Direction.choices)
    sender = serializers.ChoiceField(choices=SenderType.choices, source="sender_type")
    text = serializers.CharField()
    created_at = serializers.DateTimeField()
    quick_replies = serializers.SerializerMethodField()
    # The visitor's own id for a message they sent (null on replies, whose stored ids are
    # ours): the widget matches a polled or resumed message to the bubble it drew.
    client_message_id = serializers.SerializerMethodField()

    def get_client_message_id(self, message) -> str | None:
        return message.client_message_id if message.sender_type == SenderType.VISITOR else None

    def get_quick_replies(self, message) -> list[dict] | None:
        replies = (message.metadata or {}).get("quick_replies")
        if not replies:
            return None
        return [
            {"label": str(r.get("label", "")), "value": str(r.get("value", ""))} for r in replies
        ]


class InitOutputSerializer(serializers.Serializer):
    session_token = serializers.CharField()
    expires_at = serializers.DateTimeField()
    visitor_id = serializers.CharField()
    conversation_id = serializers.IntegerField()
    messages = MessageSerializer(many=True)
    resumed = serializers.BooleanField()


# Documented as the limit that holds after cleaning; the field itself takes twice as much,
# so text padded with control characters is cut by the rule, not refused by its length.
@extend_schema_field({"type": "string", "minLength": 1, "maxLength": MAX_TEXT})
class VisitorTextField(serializers.CharField):
    """Text typed by a visitor: control characters (NUL included) are stripped, not refused."""

    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, **kwargs)
        self.validators = [
            v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)
        ]


class MessageInputSerializer(serializers.Serializer):
    text = VisitorTextField(max_length=MAX_TEXT * 2)
    client_message_id = serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,64}$")

    def validate_client_message_id(self, value: str) -> str:
        # Agent replies mirrored from Chatwoot are stored under "chatwoot:<id>" in the same
        # conversation: a visitor's id there could block one of them.
        if value.lower().startswith(CHATWOOT_CLIENT_ID_PREFIX):
            raise serializers.ValidationError(
                f"client_message_id may not start with {CHATWOOT_CLIENT_ID_PREFIX!r}."
            )
        return value

    def validate_text(self, value: str) -> str:
        text = clean_text(value)
        if not text:
            raise serializers.ValidationError("Write a message first.")
        if len(text) > MAX_TEXT:
            raise serializers.ValidationError(f"Messages are at most {MAX_TEXT} characters.")
        return text


class MessageOutputSerializer(serializers.Serializer):
    message = MessageSerializer()
    replies = MessageSerializer(many=True)
    pending_reply = serializers.BooleanField()


class MessagesQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(required=False, min_value=0, max_value=2**62, default=0)


class MessagesOutputSerializer(serializers.Serializer):
    messages = MessageSerializer(many=True)
    pending_reply = serializers.BooleanField()


# What PostgreSQL's jsonb cannot store: NUL, and UTF-16 surrogates without their pair.
_UNSTORABLE_RE = re.compile(r"[\x00\ud800-\udfff]")


# Telemetry data is flat in practice; deeper than this is refused (and never recursed into).
MAX_EVENT_DATA_DEPTH = 8


def _storable(value) -> bool:
    """Can PostgreSQL store this event data (and is it shallow enough to look at)?"""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE_RE.search(item):
                return False
        elif isinstance(item, dict | list):
            if depth >= MAX_EVENT_DATA_DEPTH:
                return False
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return True


class EventSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    at = serializers.DateTimeField(required=False)
    data = serializers.DictField(required=False)

    def validate_data(self, value: dict) -> dict:
        if not _storable(value):
            raise serializers.ValidationError(
                "data may not hold NUL or lone surrogates, nor nest deeper than "
                f"{MAX_EVENT_DATA_DEPTH} levels."
            )
        return value


@extend_schema_field(EventSerializer)
class EventItemField(serializers.JSONField):
    """One event of a batch, taken as it came: each is checked with EventSerializer on its
    own, so one bad event is refused without the rest of its batch (documented as Event)."""


class EventsInputSerializer(serializers.Serializer):
    site_key = serializers.CharField(max_length=64, required=False)
    events = serializers.ListField(child=EventItemField(), min_length=1, max_length=50)


class EventsOutputSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=ERROR_CODES, help_text="Stable, machine-readable, e.g. rate_limited."
    )
    message = serializers.CharField(help_text="For people: what went wrong and what to do.")


class ErrorSerializer(serializers.Serializer):
    """Every error of the public API (and of any unknown path under /api/)."""

    error = ErrorDetailSerializer()
