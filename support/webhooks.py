"""Chatwoot webhook intake: verify, store the raw delivery, acknowledge, process in a task.

Signature (Chatwoot ≥ 4.11): `X-Chatwoot-Signature: sha256=<hex HMAC-SHA256(secret,
"<X-Chatwoot-Timestamp>.<raw body>")>`, checked in constant time over the raw bytes (the
body is Rails JSON with `<`, `>`, `&` escaped; re-serialising would break it). A timestamp
more than 5 minutes away from now is refused. Older Chatwoot signs nothing: a connection
may accept unsigned deliveries, with its unguessable URL token as the only credential.

Deduplication: `X-Chatwoot-Delivery` (a UUID per event, stable across redeliveries), or
event + message/conversation id when it is missing, under a unique constraint. A replayed
delivery is acknowledged and not processed again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.exceptions import InvalidRequest, PayloadTooLarge
from core.text import ascii_digits
from support import metrics, services
from support.chatwoot import events
from support.exceptions import (
    WebhookRejected,
    WebhookSignatureInvalid,
    WebhookSignatureMissing,
    WebhookTimestampExpired,
)
from support.models import ChatwootConnection, ChatwootStatus, WebhookDelivery
from support.sla import link_responded

log = structlog.get_logger(__name__)

STORED_HEADERS = (
    "Content-Type",
    "Content-Length",
    "User-Agent",
    "X-Chatwoot-Delivery",
    "X-Chatwoot-Timestamp",
    "X-Chatwoot-Signature",
)
INVALID_STORED_PER_MINUTE = 30
REPROCESS_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Receipt:
    delivery_id: int | None
    duplicate: bool
    signed: bool


def signature_for(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def webhook_verify(
    *,
    connection: ChatwootConnection,
    body: bytes,
    timestamp: str,
    signature: str,
    now: float | None = None,
) -> bool:
    """True for a valid signed delivery, False for an accepted unsigned one; else raises.

    Unsigned deliveries are accepted only by a connection with no secret that allows them
    (Chatwoot before 4.11): once a secret is set, Chatwoot signs every delivery, so one
    without a signature is not Chatwoot's."""
    secret = connection.webhook_secret
    if not secret:
        if connection.allow_unsigned_webhooks:
            return False
        raise WebhookSignatureMissing(
            "This connection has no webhook secret; set one in Chatwoot "
            "and here, or allow unsigned deliveries."
        )
    if not signature:
        raise WebhookSignatureMissing()
    now = time.time() if now is None else now
    timestamp = timestamp.strip()
    if not ascii_digits(timestamp):
        raise WebhookSignatureInvalid("X-Chatwoot-Timestamp is missing or not a Unix time.")
    if abs(now - int(timestamp)) > settings.CHATWOOT_WEBHOOK_MAX_AGE_SECONDS:
        raise WebhookTimestampExpired()
    expected = signature_for(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise WebhookSignatureInvalid()
    return True


def _replay_key(connection: ChatwootConnection, signature: str) -> str:
    digest = hashlib.sha256(signature.strip().encode()).hexdigest()[:32]
    return f"support:webhook-signature:{connection.pk}:{digest}"


def _headers_kept(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: str(headers[name])[:500] for name in STORED_HEADERS if headers.get(name)}


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace").replace("\x00", "")


def _invalid_store(
    *,
    connection: ChatwootConnection,
    headers: Mapping[str, str],
    body: bytes,
    error: WebhookRejected,
) -> None:
    """Keep refused deliveries for diagnostics, at most a few per minute per connection."""
    bucket = f"support:webhook-invalid:{connection.pk}:{int(time.time() // 60)}"
    cache.add(bucket, 0, 120)
    try:
        count = cache.incr(bucket)
    except ValueError:
        count = 1
    if count > INVALID_STORED_PER_MINUTE:
        return
    WebhookDelivery.objects.create(
        tenant_id=connection.tenant_id,
        connection=connection,
        delivery_key=str(headers.get("X-Chatwoot-Delivery", ""))[:200],
        headers=_headers_kept(headers),
        body=_text(body[:65536]),
        valid=False,
        processed=True,
        outcome=error.code,
        error=error.message,
    )


def webhook_receive(
    *, connection: ChatwootConnection, headers: Mapping[str, str], body: bytes
) -> Receipt:
    """Verify and store one delivery; processing is queued on commit."""
    if len(body) > settings.CHATWOOT_WEBHOOK_MAX_BODY_BYTES:
        metrics.WEBHOOKS.labels("too_large").inc()
        raise PayloadTooLarge()
    try:
        signed = webhook_verify(
            connection=connection,
            body=body,
            timestamp=headers.get("X-Chatwoot-Timestamp", ""),
            signature=headers.get("X-Chatwoot-Signature", ""),
        )
    except WebhookRejected as exc:
        metrics.WEBHOOKS.labels(exc.code).inc()
        log.warning(
            "support.webhook_refused",
            tenant_id=connection.tenant_id,
            connection_id=connection.pk,
            reason=exc.code,
        )
        _invalid_store(connection=connection, headers=headers, body=body, error=exc)
        raise
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        metrics.WEBHOOKS.labels("not_json").inc()
        raise InvalidRequest("The body is not JSON.") from exc
    if not isinstance(payload, dict):
        metrics.WEBHOOKS.labels("not_json").inc()
        raise InvalidRequest("The body is not a JSON object.")
    event = str(payload.get("event") or "")[:60]
    key = str(headers.get("X-Chatwoot-Delivery", "")).strip()[:200]
    key = key or events.delivery_fallback_key(event, payload)[:200]
    # The signature covers the timestamp and the body, not the delivery id: a captured
    # delivery sent again within the timestamp window under a new id is the same one.
    replay = _replay_key(connection, headers.get("X-Chatwoot-Signature", "")) if signed else None
    if replay is not None and cache.get(replay) is not None:
        metrics.WEBHOOKS.labels("duplicate").inc()
        log.info("support.webhook_replayed", connection_id=connection.pk, delivery_key=key)
        return Receipt(None, True, signed)
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                tenant_id=connection.tenant_id,
                connection=connection,
                delivery_key=key,
                event=event,
                headers=_headers_kept(headers),
                body=_text(body),
                valid=True,
                signed=signed,
            )
            if replay is not None and not cache.add(
                replay, delivery.pk, 2 * settings.CHATWOOT_WEBHOOK_MAX_AGE_SECONDS
            ):
                raise IntegrityError("the same signed delivery is being stored")
    except IntegrityError:
        metrics.WEBHOOKS.labels("duplicate").inc()
        log.info("support.webhook_duplicate", connection_id=connection.pk, delivery_key=key)
        return Receipt(None, True, signed)
    metrics.WEBHOOKS.labels("accepted" if signed else "accepted_unsigned").inc()
    delivery_id = delivery.pk
    transaction.on_commit(lambda: _process_task().delay(delivery_id=delivery_id))
    return Receipt(delivery_id, False, signed)


def _process_task():
    from support.tasks import process_webhook

    return process_webhook


# --- processing (in the task) -----------------------------------------------------------------


def webhook_process(*, delivery_id: int) -> str | None:
    """Act on a stored delivery once, inside one transaction; errors are recorded on it."""
    try:
        with transaction.atomic():
            delivery = (
                WebhookDelivery.objects.select_for_update(of=("self",))
                .select_related("connection")
                .filter(pk=delivery_id, valid=True)
                .first()
            )
            if delivery is None or delivery.processed:
                return None
            connection = delivery.connection
            event = events.parse(json.loads(delivery.body), account_id=connection.account_id)
            outcome = _apply(connection, event)
            delivery.processed = True
            delivery.processed_at = timezone.now()
            delivery.outcome = outcome[:60]
            delivery.error = ""
            delivery.attempts += 1
            delivery.save(
                update_fields=[
                    "processed",
                    "processed_at",
                    "outcome",
                    "error",
                    "attempts",
                    "updated_at",
                ]
            )
    except Exception as exc:
        log.exception("support.webhook_processing_failed", delivery_id=delivery_id)
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            attempts=F("attempts") + 1, error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        return None
    metrics.WEBHOOK_EVENTS.labels(outcome.split(":")[0] if ":" in outcome else outcome).inc()
    metrics.WEBHOOK_PROCESSING.observe(
        (delivery.processed_at - delivery.created_at).total_seconds()
    )
    return outcome


def _apply(connection: ChatwootConnection, event: events.Event) -> str:
    identifier = getattr(event, "identifier", "")
    if (
        identifier
        and not services.identifier_is_ours(identifier, tenant_id=connection.tenant_id)
        and not services.link_exists(
            connection=connection, chatwoot_conversation_id=event.conversation_id
        )
    ):
        # A conversation another tenant (or ReplyBase installation) mirrored into a
        # Chatwoot account this connection shares with it: theirs, not ours. One this
        # connection already follows (mirrored under an older identifier, say) stays ours.
        return "ignored:other_tenants_conversation"
    if isinstance(event, events.CustomerMessage):
        return _customer_message(connection, event)
    if isinstance(event, events.AgentReply):
        return _agent_reply(connection, event)
    if isinstance(event, events.StatusChange):
        return _status_change(connection, event)
    return f"ignored:{event.reason}"


def _customer_message(connection: ChatwootConnection, event: events.CustomerMessage) -> str:
    link = services.link_for_chatwoot_conversation(
        connection=connection,
        chatwoot_conversation_id=event.conversation_id,
        contact_name=event.contact_name,
        identifier=event.identifier,
    )
    at = event.created_at or timezone.now()
    # Chatwoot reopens a resolved or snoozed conversation when the customer writes (the
    # payload may still show the old status); a bot-handled "pending" one stays pending.
    status = ChatwootStatus.PENDING if event.status == "pending" else ChatwootStatus.OPEN
    fields = services.link_status_set(link=link, status=status)
    if link.first_customer_message_at is None:
        link.first_customer_message_at = at
        fields.append("first_customer_message_at")
    if link.last_customer_message_at is None or at > link.last_customer_message_at:
        link.last_customer_message_at = at
        fields.append("last_customer_message_at")
    if link.waiting_since is None:
        link.waiting_since = at
        fields.append("waiting_since")
    link.save(update_fields=[*set(fields), "contact_name", "updated_at"])
    if not event.content:
        return "customer_message:no_text"
    _, created = services.approval_item_create(
        link=link, chatwoot_message_id=event.message_id, text=event.content, received_at=at
    )
    return "customer_message" if created else "customer_message:already_drafted"


def _agent_reply(connection: ChatwootConnection, event: events.AgentReply) -> str:
    link = services.link_for_chatwoot_conversation(
        connection=connection,
        chatwoot_conversation_id=event.conversation_id,
        identifier=event.identifier,
    )
    fields = link_responded(
        link, at=event.created_at or timezone.now(), sla_minutes=connection.sla_minutes
    )
    link.save(update_fields=[*fields, "updated_at"])
    services.approval_items_supersede(link=link, before_message_id=event.message_id)
    if link.mirrored and event.content:
        stored = services.agent_reply_to_webchat(
            link=link,
            chatwoot_message_id=event.message_id,
            text=event.content,
            agent_name=event.agent_name,
        )
        if stored is not None:  # not a redelivery
            services.webchat_conversation_reopen(
                link=link, since=event.created_at or stored.created_at
            )
        return "agent_reply:to_webchat"
    return "agent_reply"


def _status_change(connection: ChatwootConnection, event: events.StatusChange) -> str:
    link = services.link_for_chatwoot_conversation(
        connection=connection,
        chatwoot_conversation_id=event.conversation_id,
        contact_name=event.contact_name,
        identifier=event.identifier,
    )
    fields = services.link_status_set(link=link, status=event.current)
    link.save(update_fields=[*fields, "contact_name", "updated_at"])
    if event.current == ChatwootStatus.RESOLVED:
        services.approval_items_supersede(link=link)
        if link.mirrored:
            services.webchat_conversation_resolve(link=link)
    elif event.current == ChatwootStatus.OPEN and link.mirrored:
        services.webchat_conversation_reopen(link=link, only_resolved=True)
    return f"status:{event.current}"


def deliveries_reprocess(*, older_than_seconds: int = 60, limit: int = 100) -> int:
    """Process accepted deliveries a lost task left behind (worker restart, outage)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        WebhookDelivery.objects.filter(
            valid=True,
            processed=False,
            created_at__lt=cutoff,
            attempts__lt=REPROCESS_MAX_ATTEMPTS,
        )
        .order_by("created_at")
        .values_list("id", flat=True)[:limit]
    )
    for delivery_id in ids:
        webhook_process(delivery_id=delivery_id)
    return len(ids)
