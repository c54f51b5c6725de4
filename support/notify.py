"""Telling a tenant's team that a visitor waits for a person, when no Chatwoot inbox does.

A conversation handed off (the visitor asked for a person, a flow rule handed it over, or
the site has no bot) is mirrored to Chatwoot when the tenant has a connection; otherwise
its owners, admins and agents get one email each, linking to the conversation page where
they reply. One email per handoff: a task run twice (a retry, a redelivery) sends once;
at most HANDOFF_EMAILS_PER_HOUR handoffs a tenant are emailed an hour.
"""

from __future__ import annotations

import contextlib
import time

import structlog
from django.conf import settings
from django.core.cache import cache, caches
from django.core.mail import get_connection, send_mass_mail
from django.db import transaction
from django.urls import reverse

from core.cache import counters_hit
from crm.models import Conversation, ConversationStatus, Direction, Message
from tenants.selectors import members_to_notify

log = structlog.get_logger(__name__)

# What brought the conversation to people, as the email says it ("staff" and Chatwoot
# agents handed it off themselves: nobody needs telling).
_REASONS = {
    "visitor_request": "The visitor asked to talk to a person.",
    "no_bot": "This website has no bot: your team answers its visitors.",
    "flow_rule": "A flow rule handed the conversation to your team.",
}
EXCERPT_CHARS = 500
# How long "this handoff was announced" is remembered (a redelivered task comes sooner).
SENT_MARK_SECONDS = 7 * 24 * 3600


def _reason_text(conversation: Conversation) -> str | None:
    reason = str((conversation.bot_state or {}).get("handoff_reason") or "")
    return _REASONS.get(reason.split(":", 1)[0])


def handoff_notify_schedule(*, conversation: Conversation) -> None:
    """Called on a handoff no Chatwoot connection takes: email the team on commit."""
    if _reason_text(conversation) is None:
        return
    from support.tasks import notify_handoff

    conversation_id = conversation.pk
    transaction.on_commit(lambda: notify_handoff.delay(conversation_id=conversation_id))


def handoff_notify(*, conversation_id: int) -> int:
    """Email the team about a handed-off conversation; the number of emails sent."""
    conversation = (
        Conversation.objects.select_related("tenant", "contact")
        .filter(pk=conversation_id, status=ConversationStatus.HANDOFF)
        .first()
    )
    reason = _reason_text(conversation) if conversation is not None else None
    if conversation is None or reason is None:
        return 0  # taken back by the bot or resolved since, or handed off by staff
    handed_off = int(conversation.handed_off_at.timestamp()) if conversation.handed_off_at else 0
    mark = f"support:handoff-notified:{conversation.pk}:{handed_off}"
    if not cache.add(mark, 1, SENT_MARK_SECONDS):
        return 0
    recipients = members_to_notify(tenant_id=conversation.tenant_id)
    budget = _hourly_budget_key(conversation.tenant_id)
    if not recipients or not _within_hourly_budget(budget, conversation.tenant_id):
        return 0
    subject, body = _email(conversation, reason)
    messages = [(subject, body, None, [user.email]) for user in recipients]
    try:
        sent = send_mass_mail(messages, fail_silently=False, connection=get_connection())
    except Exception:
        cache.delete(mark)  # a later run (the task's retry) may send it, and count it then
        _give_back(budget)
        log.exception("support.handoff_notify_failed", conversation_id=conversation.pk)
        raise
    log.info("support.handoff_notified", conversation_id=conversation.pk, emails=sent)
    return sent


def _hourly_budget_key(tenant_id: int) -> str:
    return f"support:handoff-emails:{tenant_id}:{int(time.time() // 3600)}"


def _give_back(key: str) -> None:
    with contextlib.suppress(ValueError):  # the hour's counter is gone: nothing to give back
        cache.decr(key)


def _within_hourly_budget(key: str, tenant_id: int) -> bool:
    """Count this handoff against the tenant's HANDOFF_EMAILS_PER_HOUR (the counter
    outlives its hour a little: the key names the hour)."""
    limit = settings.HANDOFF_EMAILS_PER_HOUR
    [count] = counters_hit(caches["default"], {key: (3700, limit)})
    if count > limit:
        log.warning("support.handoff_notify_over_budget", tenant_id=tenant_id, count=count)
        return False
    return True


def _email(conversation: Conversation, reason: str) -> tuple[str, str]:
    tenant = conversation.tenant
    last = (
        Message.objects.filter(
            tenant_id=conversation.tenant_id,
            conversation_id=conversation.pk,
            direction=Direction.INBOUND,
        )
        .order_by("-id")
        .first()
    )
    contact = conversation.contact
    who = (contact.name or contact.email) if contact and contact.tenant_id == tenant.pk else ""
    link = settings.PUBLIC_BASE_URL + reverse("crm:conversation", args=[conversation.pk])
    excerpt = " ".join((last.text if last else "").split())
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS - 1] + "…"
    lines = [
        f"{who or 'A website visitor'} is waiting for a person in {tenant.name}.",
        reason,
        "",
    ]
    if excerpt:
        lines += ["Their last message:", f"> {excerpt}", ""]
    lines += [f"Reply here: {link}", ""]
    # One line: a name saved with a line break would make every one of these emails
    # refused as a header (BadHeaderError), retried and never sent.
    subject = f"[{' '.join(tenant.name.split())}] A visitor is waiting for a person"
    return subject, "\n".join(lines)
