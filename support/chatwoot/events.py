"""Reading Chatwoot webhook payloads (pure: no database, no HTTP).

Facts of the wire format this relies on:
- `message_created` is sent for customer messages, agent replies, private notes and our
  own API-posted messages alike; `message_type` is a name here ("incoming") and may be
  an integer elsewhere, so both are accepted. `sender.type` ("contact") is not always
  present: the decision rests on `message_type` and `private`.
- `conversation_status_changed` is the conversation object plus `event` and
  `changed_attributes`, a list like `[{"status": {"previous_value", "current_value"}}]`,
  with no top-level `account` (the account comes from the connection).
- Every message we post carries a `source_id` starting with OUR_SOURCE_PREFIX, so its
  echo is recognised without racing the call that created it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.text import ascii_digits
from support.chatwoot.client import IDENTIFIER_ATTRIBUTE, message_type_name

OUR_SOURCE_PREFIX = "replybase:"
STATUSES = ("open", "pending", "resolved", "snoozed")


@dataclass(frozen=True)
class CustomerMessage:
    conversation_id: int
    message_id: int
    content: str
    created_at: datetime | None
    contact_name: str
    status: str | None
    identifier: str = ""  # the conversation's custom_attributes[IDENTIFIER_ATTRIBUTE]


@dataclass(frozen=True)
class AgentReply:
    conversation_id: int
    message_id: int
    content: str
    created_at: datetime | None
    agent_name: str
    identifier: str = ""


@dataclass(frozen=True)
class StatusChange:
    conversation_id: int
    previous: str | None
    current: str
    contact_name: str
    identifier: str = ""


@dataclass(frozen=True)
class Ignored:
    reason: str


Event = CustomerMessage | AgentReply | StatusChange | Ignored


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 (webhooks) or epoch seconds (REST) to an aware datetime."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


# A positive id that fits a bigint column.
_ID_MAX = 2**63 - 1


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and ascii_digits(value) and len(value) <= 19:
        value = int(value)
    if isinstance(value, int):
        return value if 0 < value <= _ID_MAX else None
    return None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _identifier(conversation: dict) -> str:
    """Our name of the conversation, when we created it (see services.handoff_identifier)."""
    value = _dict(conversation.get("custom_attributes")).get(IDENTIFIER_ATTRIBUTE)
    return value[:255] if isinstance(value, str) else ""


def _contact_name(conversation: dict) -> str:
    sender = _dict(_dict(conversation.get("meta")).get("sender"))
    return str(sender.get("name") or sender.get("email") or "")[:255]


def delivery_fallback_key(event: str, payload: dict) -> str:
    """The dedupe key when Chatwoot sent no X-Chatwoot-Delivery: event + message id, or
    event + conversation id + the new status + the conversation's updated_at."""
    if event.startswith("message_"):
        return f"{event}:message:{payload.get('id')}"
    status = _status_change(payload)
    current = status[1] if status else payload.get("status")
    return f"{event}:conversation:{payload.get('id')}:{current}:{payload.get('updated_at')}"


def _status_change(payload: dict) -> tuple[str | None, str] | None:
    changed = payload.get("changed_attributes")
    entries = (
        changed if isinstance(changed, list) else [changed] if isinstance(changed, dict) else []
    )
    for entry in entries:
        status = _dict(_dict(entry).get("status"))
        if status.get("current_value") in STATUSES:
            previous = status.get("previous_value")
            return (previous if isinstance(previous, str) else None, status["current_value"])
    return None


def parse(payload: Any, *, account_id: int | None) -> Event:
    """What a delivery means for us; everything we do not act on is `Ignored(reason)`."""
    if not isinstance(payload, dict):
        return Ignored("not_an_object")
    event = payload.get("event")
    if event == "message_created":
        return _message_created(payload, account_id=account_id)
    if event == "conversation_status_changed":
        conversation_id = _int(payload.get("id"))
        if conversation_id is None:
            return Ignored("no_conversation_id")
        change = _status_change(payload)
        if change is None:
            status = payload.get("status")
            if status not in STATUSES:
                return Ignored("no_status_change")
            change = (None, status)
        return StatusChange(
            conversation_id, change[0], change[1], _contact_name(payload), _identifier(payload)
        )
    return Ignored(f"event:{event}" if isinstance(event, str) else "no_event")


def _message_created(payload: dict, *, account_id: int | None) -> Event:
    account = _dict(payload.get("account"))
    if account_id and _int(account.get("id")) not in (None, account_id):
        return Ignored("other_account")
    conversation = _dict(payload.get("conversation"))
    conversation_id = _int(conversation.get("id"))
    message_id = _int(payload.get("id"))
    if conversation_id is None or message_id is None:
        return Ignored("no_ids")
    if payload.get("private") in (True, "true"):
        return Ignored("private_note")
    source_id = payload.get("source_id")
    if isinstance(source_id, str) and source_id.startswith(OUR_SOURCE_PREFIX):
        return Ignored("own_message")
    kind = message_type_name(payload.get("message_type"))
    sender = _dict(payload.get("sender"))
    sender_type = str(sender.get("type") or "").lower()
    content = payload.get("content") if isinstance(payload.get("content"), str) else ""
    created_at = parse_time(payload.get("created_at"))
    if kind == "incoming":
        if sender_type and sender_type != "contact":
            return Ignored("incoming_not_from_contact")
        return CustomerMessage(
            conversation_id=conversation_id,
            message_id=message_id,
            content=content.strip(),
            created_at=created_at,
            contact_name=str(sender.get("name") or "")[:255] or _contact_name(conversation),
            status=conversation.get("status") if conversation.get("status") in STATUSES else None,
            identifier=_identifier(conversation),
        )
    if kind == "outgoing":
        if sender_type and sender_type != "user":
            return Ignored(f"outgoing_from_{sender_type}")
        return AgentReply(
            conversation_id=conversation_id,
            message_id=message_id,
            content=content.strip(),
            created_at=created_at,
            agent_name=str(sender.get("available_name") or sender.get("name") or "")[:120],
            identifier=_identifier(conversation),
        )
    return Ignored(f"message_type:{kind or 'missing'}")
