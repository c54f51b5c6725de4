"""Writes and side effects of the support integration (webhook intake is in webhooks.py).

- Drafts: a customer message becomes an ApprovalItem; the bot's engine drafts a reply from
  the tenant's knowledge base; the draft is posted to Chatwoot as a private note.
- Approval: a human approves (optionally after editing) or rejects; an approved reply is
  sent to Chatwoot as a public message.
- Handoff: a webchat conversation handed to humans is mirrored into Chatwoot (contact,
  conversation, transcript as incoming messages) and later visitor messages follow.
- Retry queue: a Chatwoot call that still fails after its backoff retries is parked in
  OutboundRetry and run again by beat (or by hand from the admin). `inline=True` is work
  running inside someone's request (eager Celery: embedded mode, tests): one attempt per
  call and a failure goes straight to the retry queue, so nobody waits through backoff.

No Chatwoot call ever runs inside a database transaction: state is read, the call is
made, and the result is written in a short transaction of its own. Every message we post
carries a `source_id` (`replybase:<ns>:<kind>:<id>`), so a retry can look for it first
and its webhook echo is recognised. A mirrored conversation carries
`replybase:<ns>:<tenant>:conversation:<id>` (custom attribute); its Chatwoot contact is one
per crm Contact, `identifier` `replybase:<ns>:<tenant>:contact:<id>` (an anonymous
visitor's is the conversation's own), with a contact inbox per conversation. Both are
looked for before they are created: a retry after a crash between Chatwoot's answer and
storing its id finds them instead of making a second one. `<ns>` names this installation
(`installation_namespace`), so installations sharing a Chatwoot account never match.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from core.exceptions import InvalidRequest
from core.locks import lock_acquire, lock_release
from core.text import MAX_TEXT, ascii_digits, clean_text
from crm.models import Contact, Conversation, ConversationStatus, Message, SenderType
from support import metrics
from support.chatwoot.client import (
    IDENTIFIER_ATTRIBUTE,
    ChatwootClient,
    ChatwootError,
    ChatwootMessage,
    ContactCreated,
)
from support.chatwoot.events import OUR_SOURCE_PREFIX
from support.exceptions import ApprovalNotPending
from support.models import (
    OPEN_APPROVAL_STATUSES,
    ApprovalItem,
    ApprovalStatus,
    ChatwootConnection,
    ChatwootConversationLink,
    ChatwootStatus,
    OutboundRetry,
    RetryOperation,
    RetryStatus,
)
from support.notify import handoff_notify_schedule
from support.sla import link_responded
from tenants.models import Tenant
from webchat import metrics as webchat_metrics

log = structlog.get_logger(__name__)

# Agent replies mirrored into a webchat conversation are stored under this client id prefix
# (plus the Chatwoot message id), so a redelivered webhook stores nothing twice.
CHATWOOT_CLIENT_ID_PREFIX = "chatwoot:"
MAX_REPLY_CHARS = 10_000
MAX_REASON_CHARS = 1_000
RETRY_MAX_ATTEMPTS = 10
RETRY_MAX_DELAY = timedelta(hours=1)
RETRY_CLAIM = timedelta(minutes=10)
# Longer than a sync task may run (tasks.OUTBOUND_TIME_LIMIT, 300 s): a lock that
# expired mid-sync would let a second worker post the same messages.
SYNC_LOCK_SECONDS = 360
# A sync posts what was stored while it ran, for at most this many rounds.
SYNC_ROUNDS = 5
RELATED_ARTICLES = 3
INSTALLATION_SALT = "support.chatwoot.installation"
SENDER_LABELS = {SenderType.BOT: "Bot", SenderType.AGENT: "Agent", SenderType.SYSTEM: "System"}


# --- connections ---------------------------------------------------------------------------


def connection_create(
    *,
    tenant: Tenant,
    base_url: str,
    account_id: int,
    api_token: str = "",
    webhook_secret: str = "",
    name: str = "Chatwoot",
    **fields,
) -> ChatwootConnection:
    connection = ChatwootConnection(
        tenant=tenant, name=name, base_url=base_url, account_id=account_id, **fields
    )
    if api_token:
        connection.set_api_token(api_token)
    if webhook_secret:
        connection.set_webhook_secret(webhook_secret)
    connection.full_clean()
    connection.save()
    return connection


def _env_tenant() -> Tenant | None:
    if settings.CHATWOOT_TENANT:
        return Tenant.objects.filter(slug=settings.CHATWOOT_TENANT).first()
    tenants = list(Tenant.objects.all()[:2])
    return tenants[0] if len(tenants) == 1 else None


def env_connection_problem() -> str:
    """Why the CHATWOOT_* env vars cannot define the default connection ("" when fine)."""
    if settings.CHATWOOT_BASE_URL and _env_tenant() is None:
        return (
            "CHATWOOT_BASE_URL is set but no tenant owns the default connection: set "
            "CHATWOOT_TENANT to a tenant slug."
        )
    return ""


def connection_sync_from_env() -> ChatwootConnection | None:
    """The default connection defined by the CHATWOOT_* env vars (single-tenant installs).

    Created or updated in place; the token stays in the environment (`token_from_env`).
    None when CHATWOOT_BASE_URL is unset or no tenant can own it (set CHATWOOT_TENANT).
    """
    if not settings.CHATWOOT_BASE_URL:
        return None
    tenant = _env_tenant()
    if tenant is None:
        log.warning("support.env_connection_no_tenant", tenant=settings.CHATWOOT_TENANT)
        return None
    account = str(settings.CHATWOOT_ACCOUNT_ID).strip()
    inbox = str(settings.CHATWOOT_INBOX_ID).strip()
    wanted = {
        "base_url": settings.CHATWOOT_BASE_URL,
        "account_id": int(account) if ascii_digits(account) else None,
        "token_from_env": True,
        "sla_minutes": settings.CHATWOOT_SLA_MINUTES,
        "embed_token": settings.CHATWOOT_EMBED_TOKEN,
        "health_path": settings.CHATWOOT_HEALTH_PATH or "/health",
        "inbox_id": int(inbox) if ascii_digits(inbox) else None,
    }
    connection, created = ChatwootConnection.objects.get_or_create(
        tenant=tenant, name="default (env)", defaults=wanted
    )
    changed = [k for k, v in wanted.items() if getattr(connection, k) != v]
    for key in changed:
        setattr(connection, key, wanted[key])
    if settings.CHATWOOT_WEBHOOK_SECRET and (
        connection.webhook_secret != settings.CHATWOOT_WEBHOOK_SECRET
    ):
        connection.set_webhook_secret(settings.CHATWOOT_WEBHOOK_SECRET)
        changed.append("webhook_secret_encrypted")
    if changed and not created:
        connection.save(update_fields=[*changed, "updated_at"])
    elif "webhook_secret_encrypted" in changed:
        connection.save(update_fields=["webhook_secret_encrypted", "updated_at"])
    return connection


def _client(connection: ChatwootConnection, *, inline: bool = False) -> ChatwootClient:
    return ChatwootClient.for_connection(connection, backoff=not inline)


# --- our names in Chatwoot -------------------------------------------------------------------


def installation_namespace() -> str:
    """A short stable name of this installation, derived from SECRET_KEY: two
    installations sharing one Chatwoot account (staging and production, a reset embedded
    database) number tenants, contacts and messages alike, and must not find each other's
    contacts, conversations or messages. Links already stored keep Chatwoot's ids, so a
    new SECRET_KEY only changes what is looked for from then on."""
    return salted_hmac(INSTALLATION_SALT, "namespace", algorithm="sha256").hexdigest()[:10]


def _our_prefix() -> str:
    return f"{OUR_SOURCE_PREFIX}{installation_namespace()}:"


def _tenant_prefix(tenant_id: int) -> str:
    """What every identifier of the tenant's conversations and contacts starts with
    (`replybase:<ns>:<tenant>:`)."""
    return f"{_our_prefix()}{tenant_id}:"


def our_source_id(kind: str, pk: int) -> str:
    """The `source_id` of a message we post (`replybase:<ns>:<kind>:<pk>`): found again by
    a retry, and its webhook echo recognised by the prefix."""
    return f"{_our_prefix()}{kind}:{pk}"


# --- conversation links ----------------------------------------------------------------------


def link_for_chatwoot_conversation(
    *,
    connection: ChatwootConnection,
    chatwoot_conversation_id: int,
    contact_name: str = "",
    identifier: str = "",
) -> ChatwootConversationLink:
    """The (locked) link of a Chatwoot conversation, created on first sight. In a transaction.

    A conversation we created carries our `identifier`: when its creation's answer was
    lost (a timeout, a crash), the mirrored link still waits for the Chatwoot id, and the
    first webhook about it (an agent's reply to the empty conversation) gives it, instead
    of a second, unmirrored link that would swallow the reply and block the sync."""
    link = ChatwootConversationLink.objects.filter(
        connection=connection, chatwoot_conversation_id=chatwoot_conversation_id
    ).first() or _link_awaiting_id(connection, identifier)
    if link is None:
        link, _ = ChatwootConversationLink.objects.get_or_create(
            connection=connection,
            chatwoot_conversation_id=chatwoot_conversation_id,
            defaults={"tenant_id": connection.tenant_id, "contact_name": contact_name},
        )
    link = ChatwootConversationLink.objects.select_for_update().get(pk=link.pk)
    if link.chatwoot_conversation_id is None:
        link.chatwoot_conversation_id = chatwoot_conversation_id
        link.save(update_fields=["chatwoot_conversation_id", "updated_at"])
    if contact_name and not link.contact_name:
        link.contact_name = contact_name
    return link


def link_exists(*, connection: ChatwootConnection, chatwoot_conversation_id: int) -> bool:
    return ChatwootConversationLink.objects.filter(
        connection=connection, chatwoot_conversation_id=chatwoot_conversation_id
    ).exists()


def identifier_is_ours(identifier: str, *, tenant_id: int) -> bool:
    """Does a Chatwoot conversation's replybase_id name one of this installation's and
    this tenant's conversations? (Not one of ours at all: an agent's own value, yes.)"""
    if not identifier.startswith(OUR_SOURCE_PREFIX):
        return True
    return identifier.startswith(_tenant_prefix(tenant_id))


def _link_awaiting_id(
    connection: ChatwootConnection, identifier: str
) -> ChatwootConversationLink | None:
    """The mirrored link, still without a Chatwoot id, of the conversation `identifier`
    (see handoff_identifier) names: one of this installation and connection's tenant."""
    prefix = f"{_tenant_prefix(connection.tenant_id)}conversation:"
    pk = identifier.removeprefix(prefix)
    if not identifier.startswith(prefix) or not ascii_digits(pk):
        return None
    return ChatwootConversationLink.objects.filter(
        connection=connection, conversation_id=int(pk), chatwoot_conversation_id__isnull=True
    ).first()


# --- drafts ------------------------------------------------------------------------------------


def approval_item_create(
    *, link: ChatwootConversationLink, chatwoot_message_id: int, text: str, received_at
) -> tuple[ApprovalItem, bool]:
    """One item per Chatwoot message (unique), due by the link's SLA clock. In a transaction."""
    connection = link.connection
    waiting_since = link.waiting_since or received_at
    item, created = ApprovalItem.objects.get_or_create(
        connection=connection,
        chatwoot_message_id=chatwoot_message_id,
        defaults={
            "tenant_id": connection.tenant_id,
            "link": link,
            "customer_text": text,
            "received_at": received_at,
            "due_at": waiting_since + timedelta(minutes=connection.sla_minutes),
        },
    )
    if created:
        item_id = item.pk
        transaction.on_commit(lambda: _draft_task().delay(item_id=item_id))
    return item, created


def _draft_task():
    from support.tasks import draft_reply  # tasks import this module

    return draft_reply


def _draft_bot(connection: ChatwootConnection):
    from bots.selectors import bot_list

    return connection.bot or bot_list(tenant=connection.tenant).first()


def _related_articles(*, tenant_id: int, question: str) -> list[dict]:
    from bots.engines import knowledge_index_for_tenant

    index = knowledge_index_for_tenant(tenant_id=tenant_id)
    return [
        {"id": doc.id, "title": doc.title, "score": round(float(score), 3)}
        for doc, score in index.search(question, k=RELATED_ARTICLES)
    ]


def approval_item_draft(*, item_id: int, inline: bool = False) -> ApprovalItem | None:
    """Draft a reply with the bot's engine (outside any transaction), store it, post the note."""
    from bots.services import answer_question

    item = (
        ApprovalItem.objects.select_related("connection__tenant", "connection__bot", "link")
        .filter(pk=item_id)
        .first()
    )
    if item is None or item.status != ApprovalStatus.DRAFTING:
        return None
    connection = item.connection
    bot = _draft_bot(connection)
    started = time.monotonic()
    related = _related_articles(tenant_id=item.tenant_id, question=item.customer_text)
    if bot is None:
        text, outcome, confidence, sources = "", "no_bot", None, []
    else:
        reply = answer_question(bot=bot, question=item.customer_text)
        answered = reply.outcome == "answered" and bool(reply.text.strip())
        text = reply.text.strip() if answered else ""
        outcome, confidence = reply.outcome, reply.confidence
        sources = [
            {"id": article_id, "title": title}
            for article_id, title in zip(reply.article_ids, reply.article_titles, strict=False)
        ]
    latency_ms = int((time.monotonic() - started) * 1000)
    with transaction.atomic():
        item = (
            ApprovalItem.objects.select_for_update(of=("self",))
            .select_related("connection", "link")
            .get(pk=item_id)
        )
        if item.status != ApprovalStatus.DRAFTING:
            return None
        item.draft_text = text
        item.draft_outcome = outcome
        item.draft_confidence = None if confidence is None else round(float(confidence), 4)
        item.draft_latency_ms = latency_ms
        item.sources = sources
        item.related_articles = related
        item.status = ApprovalStatus.PENDING
        item.save(
            update_fields=[
                "draft_text",
                "draft_outcome",
                "draft_confidence",
                "draft_latency_ms",
                "sources",
                "related_articles",
                "status",
                "updated_at",
            ]
        )
    metrics.DRAFTS.labels(outcome).inc()
    log.info(
        "support.drafted",
        tenant_id=item.tenant_id,
        item_id=item.pk,
        outcome=outcome,
        latency_ms=latency_ms,
    )
    if text:
        approval_item_note_post(item=item, inline=inline)
    return item


def private_note_text(item: ApprovalItem) -> str:
    details = []
    if item.draft_confidence is not None:
        details.append(f"confidence {item.draft_confidence:.2f}")
    if item.sources:
        details.append("sources: " + ", ".join(s["title"] for s in item.sources))
    header = "AI draft waiting for approval in ReplyBase"
    if details:
        header += f" ({'; '.join(details)})"
    return f"{header}:\n\n{item.draft_text}"


def _item_post_once(
    client: ChatwootClient, item: ApprovalItem, kind: str, *, from_retry: bool, **message
) -> ChatwootMessage:
    """Post the item's note or reply (`kind`) to its Chatwoot conversation once. A retry,
    or any attempt after one was started (`<kind>_attempted_at`, stored before the post:
    its answer may have been lost, or the bookkeeping after it failed), looks for the
    message by its source_id first."""
    conversation_id = item.link.chatwoot_conversation_id
    source_id = our_source_id(kind, item.pk)
    attempted = f"{kind}_attempted_at"
    if from_retry or getattr(item, attempted):
        found = client.find_message_by_source_id(
            conversation_id=conversation_id, source_id=source_id
        )
        if found is not None:
            return found
    now = timezone.now()
    ApprovalItem.objects.filter(pk=item.pk).update(**{attempted: now})
    setattr(item, attempted, now)
    return client.create_message(
        conversation_id=conversation_id, message_type="outgoing", source_id=source_id, **message
    )


def approval_item_note_post(
    *, item: ApprovalItem, from_retry: bool = False, inline: bool = False
) -> bool:
    """Post the draft to Chatwoot as a private note (once); on failure park it for retry."""
    if item.private_note_id or not item.draft_text or item.link.chatwoot_conversation_id is None:
        retry_mark_done(operation=RetryOperation.PRIVATE_NOTE, object_id=item.pk)
        return True
    client = _client(item.connection, inline=inline)
    try:
        message = _item_post_once(
            client,
            item,
            "note",
            from_retry=from_retry,
            content=private_note_text(item),
            private=True,
            operation="private_note",
        )
    except ChatwootError as exc:
        retry_enqueue(
            connection=item.connection,
            operation=RetryOperation.PRIVATE_NOTE,
            object_id=item.pk,
            error=exc,
        )
        return False
    ApprovalItem.objects.filter(pk=item.pk).update(
        private_note_id=message.id, updated_at=timezone.now()
    )
    item.private_note_id = message.id
    metrics.DRAFT_PIPELINE.observe((timezone.now() - item.created_at).total_seconds())
    retry_mark_done(operation=RetryOperation.PRIVATE_NOTE, object_id=item.pk)
    return True


# --- approval ------------------------------------------------------------------------------------


def _item_lock(item: ApprovalItem) -> ApprovalItem:
    return (
        ApprovalItem.objects.select_for_update(of=("self",))
        .select_related("connection", "link")
        .get(tenant_id=item.tenant_id, pk=item.pk)
    )


@transaction.atomic
def approval_item_approve(*, item: ApprovalItem, actor, text: str | None = None) -> ApprovalItem:
    """Approve the draft (or `text`, an edited version of it); the reply is sent on commit."""
    item = _item_lock(item)
    if item.status != ApprovalStatus.PENDING:
        raise ApprovalNotPending(f"This draft is already {item.get_status_display().lower()}.")
    final = (item.draft_text if text is None else text).replace("\x00", "").strip()
    if not final:
        raise InvalidRequest("The reply is empty: write one before approving.")
    if len(final) > MAX_REPLY_CHARS:
        raise InvalidRequest(f"The reply is longer than {MAX_REPLY_CHARS} characters.")
    item.final_text = final
    item.edited = final != item.draft_text.strip()
    item.status = ApprovalStatus.APPROVED
    item.decided_by = actor
    item.decided_at = timezone.now()
    item.save(
        update_fields=["final_text", "edited", "status", "decided_by", "decided_at", "updated_at"]
    )
    metrics.APPROVALS.labels("edited" if item.edited else "approved").inc()
    item_id = item.pk
    transaction.on_commit(lambda: _send_task().delay(item_id=item_id))
    return item


def _send_task():
    from support.tasks import send_reply

    return send_reply


@transaction.atomic
def approval_item_reject(*, item: ApprovalItem, actor, reason: str) -> ApprovalItem:
    item = _item_lock(item)
    if item.status != ApprovalStatus.PENDING:
        raise ApprovalNotPending(f"This draft is already {item.get_status_display().lower()}.")
    reason = (reason or "").replace("\x00", "").strip()
    if not reason:
        raise InvalidRequest("Give a reason for rejecting the draft.")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidRequest(f"The reason is longer than {MAX_REASON_CHARS} characters.")
    item.status = ApprovalStatus.REJECTED
    item.reject_reason = reason
    item.decided_by = actor
    item.decided_at = timezone.now()
    item.save(update_fields=["status", "reject_reason", "decided_by", "decided_at", "updated_at"])
    metrics.APPROVALS.labels("rejected").inc()
    return item


def approval_items_supersede(
    *, link: ChatwootConversationLink, before_message_id: int | None = None
) -> int:
    """Drafts nobody decided on yet that a reply or a resolution made moot. In a transaction."""
    items = ApprovalItem.objects.filter(link=link, status__in=OPEN_APPROVAL_STATUSES)
    if before_message_id is not None:
        items = items.filter(chatwoot_message_id__lt=before_message_id)
    return items.update(status=ApprovalStatus.SUPERSEDED, updated_at=timezone.now())


def approval_item_send(*, item_id: int, from_retry: bool = False, inline: bool = False) -> bool:
    """Send an approved reply to Chatwoot as a public message (once)."""
    item = ApprovalItem.objects.select_related("connection", "link").filter(pk=item_id).first()
    if item is None or item.status != ApprovalStatus.APPROVED:
        retry_mark_done(operation=RetryOperation.REPLY, object_id=item_id)
        return item is not None and item.status == ApprovalStatus.SENT
    client = _client(item.connection, inline=inline)
    try:
        message = _item_post_once(
            client,
            item,
            "reply",
            from_retry=from_retry,
            content=item.final_text,
            private=False,
            operation="reply",
        )
    except ChatwootError as exc:
        retry_enqueue(
            connection=item.connection, operation=RetryOperation.REPLY, object_id=item.pk, error=exc
        )
        return False
    now = timezone.now()
    with transaction.atomic():
        item = _item_lock(item)
        if item.status == ApprovalStatus.APPROVED:
            item.status = ApprovalStatus.SENT
            item.reply_message_id = message.id
            item.sent_at = now
            item.save(update_fields=["status", "reply_message_id", "sent_at", "updated_at"])
            link = ChatwootConversationLink.objects.select_for_update().get(pk=item.link_id)
            fields = link_responded(link, at=now, sla_minutes=item.connection.sla_minutes)
            link.save(update_fields=[*fields, "updated_at"])
            approval_items_supersede(link=link, before_message_id=item.chatwoot_message_id)
    retry_mark_done(operation=RetryOperation.REPLY, object_id=item_id)
    return True


# --- webchat handoff -----------------------------------------------------------------------------


def handoff_connection_for_tenant(*, tenant_id: int) -> ChatwootConnection | None:
    """The connection handed-off webchat conversations go to: active, with an inbox."""
    return (
        ChatwootConnection.objects.filter(tenant_id=tenant_id, active=True, inbox_id__isnull=False)
        .exclude(base_url="")
        .order_by("id")
        .first()
    )


def _handoff_task():
    from support.tasks import sync_handoff

    return sync_handoff


def handoff_mirror_schedule(*, conversation: Conversation) -> None:
    """Called by `bots.services.conversation_handoff`: mirror the conversation on commit
    (without a Chatwoot connection: email the team, `support.notify`)."""
    if handoff_connection_for_tenant(tenant_id=conversation.tenant_id) is None:
        handoff_notify_schedule(conversation=conversation)
        return
    conversation_id = conversation.pk
    transaction.on_commit(lambda: _handoff_task().delay(conversation_id=conversation_id))


def handoff_message_forward_schedule(*, message: Message) -> None:
    """Called by `webchat.services.message_receive`: a visitor message on a handed-off,
    mirrored conversation is forwarded to Chatwoot on commit."""
    conversation = message.conversation
    if conversation.status != ConversationStatus.HANDOFF:
        return
    if not ChatwootConversationLink.objects.filter(
        tenant_id=conversation.tenant_id, conversation_id=conversation.pk
    ).exists():
        return  # the mirror task has not started yet; it sends everything when it runs
    conversation_id = conversation.pk
    transaction.on_commit(lambda: _handoff_task().delay(conversation_id=conversation_id))


class SyncBusy(Exception):
    """Another worker is syncing this conversation; try again shortly."""


@dataclass
class SyncResult:
    link: ChatwootConversationLink | None
    posted: int
    ok: bool


def _crm_contact(conversation: Conversation) -> Contact | None:
    contact = conversation.contact
    return contact if contact is not None and contact.tenant_id == conversation.tenant_id else None


def _contact_name(conversation: Conversation) -> tuple[str, str]:
    contact = _crm_contact(conversation)
    name = (contact.name or contact.email) if contact else ""
    return name or f"Website visitor #{conversation.pk}", (contact.email if contact else "")


def _transcript_text(message: Message) -> str:
    if message.sender_type == SenderType.VISITOR:
        return message.text
    return f"[{SENDER_LABELS.get(message.sender_type, 'Bot')}] {message.text}"


def _message_source_id(message: Message) -> str:
    return our_source_id("msg", message.pk)


def handoff_identifier(conversation: Conversation) -> str:
    """Our stable name of a mirrored conversation: the Chatwoot conversation's custom
    attribute, and the contact `identifier` of an anonymous visitor."""
    return f"{_tenant_prefix(conversation.tenant_id)}conversation:{conversation.pk}"


def handoff_contact_identifier(conversation: Conversation) -> str:
    """The Chatwoot contact's `identifier`: one contact per crm Contact (a returning visitor
    or known customer is one person to agents, all their conversations under it), else
    one per webchat conversation."""
    contact = _crm_contact(conversation)
    if contact is None:
        return handoff_identifier(conversation)
    return f"{_tenant_prefix(conversation.tenant_id)}contact:{contact.pk}"


def _handoff_retry_waiting(conversation_id: int) -> bool:
    return OutboundRetry.objects.filter(
        operation=RetryOperation.HANDOFF_SYNC,
        object_id=conversation_id,
        status=RetryStatus.QUEUED,
        next_attempt_at__gt=timezone.now(),
    ).exists()


def _handoff_attempt_uncertain(link: ChatwootConversationLink, *, first_pending_id: int) -> bool:
    """Whether a pending message may already be in Chatwoot: a post of it (or of a later
    one) was started and never noted as done, or a failed sync of this conversation is
    parked (queued or given up)."""
    if first_pending_id <= link.attempted_message_id:
        return True
    return OutboundRetry.objects.filter(
        operation=RetryOperation.HANDOFF_SYNC,
        object_id=link.conversation_id,
        status__in=[RetryStatus.QUEUED, RetryStatus.FAILED],
    ).exists()


def handoff_sync(
    *, conversation_id: int, from_retry: bool = False, inline: bool = False
) -> SyncResult:
    """Mirror a handed-off webchat conversation into Chatwoot and post what is not there yet.

    Each step stores its external id before the next one (contact, conversation, then
    every message in order), so a retry carries on where the failure happened; the
    contact and the conversation are looked for (by `handoff_identifier`) before they are
    created, for when the id of an earlier attempt was never stored. Messages are looked
    for (by source_id) before they are posted whenever an earlier post may have landed
    unnoticed: a retry, a found conversation, a post started and never noted as done
    (`attempted_message_id`), or a parked sync of this conversation.

    Inline (in the visitor's request) it makes one attempt per call, and while a parked
    retry of this conversation is not due yet it calls nothing: Chatwoot failed moments
    ago, and the retry posts every message that is pending when it runs.
    """
    conversation = Conversation.objects.select_related("contact").filter(pk=conversation_id).first()
    if conversation is None:
        retry_mark_done(operation=RetryOperation.HANDOFF_SYNC, object_id=conversation_id)
        return SyncResult(None, 0, True)
    if inline and not from_retry and _handoff_retry_waiting(conversation_id):
        log.info(
            "support.handoff_deferred",
            tenant_id=conversation.tenant_id,
            conversation_id=conversation_id,
        )
        return SyncResult(None, 0, False)
    lock = f"support:handoff-sync:{conversation_id}"
    token = lock_acquire(key=lock, seconds=SYNC_LOCK_SECONDS)
    if token is None:
        raise SyncBusy(conversation_id)
    try:
        return _handoff_sync_locked(conversation, from_retry=from_retry, inline=inline)
    finally:
        if not lock_release(key=lock, token=token):
            log.warning(
                "support.handoff_sync_lock_lost",
                tenant_id=conversation.tenant_id,
                conversation_id=conversation_id,
            )


def _handoff_link(conversation: Conversation) -> ChatwootConversationLink | None:
    link = (
        ChatwootConversationLink.objects.select_related("connection")
        .filter(tenant_id=conversation.tenant_id, conversation=conversation)
        .first()
    )
    if link is not None:
        return link
    connection = handoff_connection_for_tenant(tenant_id=conversation.tenant_id)
    if connection is None:
        return None
    since = conversation.handed_off_at or timezone.now()
    name, _ = _contact_name(conversation)
    try:
        with transaction.atomic():
            link = ChatwootConversationLink.objects.create(
                tenant_id=conversation.tenant_id,
                connection=connection,
                conversation=conversation,
                contact_source_id=f"replybase-{uuid.uuid4().hex}",
                contact_name=name[:255],
                first_customer_message_at=since,
                last_customer_message_at=since,
                waiting_since=since,
            )
    except IntegrityError:
        link = ChatwootConversationLink.objects.get(conversation=conversation)
    return ChatwootConversationLink.objects.select_related("connection").get(pk=link.pk)


def _handoff_pending(conversation: Conversation, link: ChatwootConversationLink) -> list[Message]:
    """The conversation's messages not in Chatwoot yet (agent replies came from there)."""
    return list(
        Message.objects.filter(
            tenant_id=conversation.tenant_id,
            conversation=conversation,
            id__gt=link.last_synced_message_id,
        )
        .exclude(metadata__has_key="chatwoot_message_id")
        .order_by("id")
    )


def _link_take_id(link: ChatwootConversationLink, chatwoot_id: int) -> None:
    """Store the Chatwoot id of a mirrored link's conversation. A webhook about it that
    came first without our identifier made it a link of its own (unmirrored): that one
    gives way, its drafts moving to this link."""
    link.chatwoot_conversation_id = chatwoot_id
    with transaction.atomic():
        other = (
            ChatwootConversationLink.objects.select_for_update()
            .filter(connection_id=link.connection_id, chatwoot_conversation_id=chatwoot_id)
            .exclude(pk=link.pk)
            .first()
        )
        if other is not None and other.conversation_id is None:
            ApprovalItem.objects.filter(link=other).update(link=link)
            other.delete()
        link.save(update_fields=["chatwoot_conversation_id", "updated_at"])


def _handoff_sync_locked(
    conversation: Conversation, *, from_retry: bool, inline: bool
) -> SyncResult:
    link = _handoff_link(conversation)
    if link is None:
        return SyncResult(None, 0, True)
    _link_round_start(link, conversation)
    connection = link.connection
    client = _client(connection, inline=inline)
    identifier = handoff_identifier(conversation)
    posted = 0
    found_conversation = False
    contact_inbox_made = False
    try:
        if link.chatwoot_contact_id is None:
            contact_inbox_made = _handoff_contact_ensure(client, link, conversation)
        if link.chatwoot_conversation_id is None:
            chatwoot_id = client.find_conversation(
                contact_id=link.chatwoot_contact_id,
                inbox_id=connection.inbox_id,
                identifier=identifier,
            )
            found_conversation = chatwoot_id is not None
            if chatwoot_id is None:
                if not contact_inbox_made:
                    _handoff_contact_inbox_ensure(client, link)
                chatwoot_id = client.create_conversation(
                    source_id=link.contact_source_id,
                    inbox_id=connection.inbox_id,
                    contact_id=link.chatwoot_contact_id,
                    additional_attributes={"source": "ReplyBase webchat"},
                    custom_attributes={
                        "replybase_conversation_id": conversation.pk,
                        IDENTIFIER_ATTRIBUTE: identifier,
                    },
                )
            _link_take_id(link, chatwoot_id)
        # Messages stored while this sync ran are posted by it too (another round): their
        # own syncs found the lock taken and may have given up waiting for it.
        uncertain = from_retry or found_conversation
        for _round in range(SYNC_ROUNDS):
            pending = _handoff_pending(conversation, link)
            if not pending:
                break
            already: set[str] = set()
            if uncertain or _handoff_attempt_uncertain(link, first_pending_id=pending[0].pk):
                already = set(
                    client.find_messages_by_source_id(
                        conversation_id=link.chatwoot_conversation_id,
                        source_ids=[_message_source_id(m) for m in pending],
                    )
                )
            uncertain = False
            for message in pending:
                source_id = _message_source_id(message)
                if source_id not in already:
                    if link.attempted_message_id < message.pk:
                        link.attempted_message_id = message.pk
                        link.save(update_fields=["attempted_message_id", "updated_at"])
                    client.create_message(
                        conversation_id=link.chatwoot_conversation_id,
                        content=_transcript_text(message),
                        message_type="incoming",
                        source_id=source_id,
                        operation="handoff_message",
                    )
                    posted += 1
                _link_synced(link, message, handed_off_at=conversation.handed_off_at)
    except ChatwootError as exc:
        retry_enqueue(
            connection=connection,
            operation=RetryOperation.HANDOFF_SYNC,
            object_id=conversation.pk,
            error=exc,
        )
        return SyncResult(link, posted, False)
    retry_mark_done(operation=RetryOperation.HANDOFF_SYNC, object_id=conversation.pk)
    log.info(
        "support.handoff_synced",
        tenant_id=conversation.tenant_id,
        conversation_id=conversation.pk,
        chatwoot_conversation_id=link.chatwoot_conversation_id,
        posted=posted,
    )
    return SyncResult(link, posted, True)


def _identifier_taken(exc: ChatwootError) -> bool:
    return exc.status == 422 and "identifier" in exc.message.lower()


def _handoff_contact_ensure(client: ChatwootClient, link, conversation: Conversation) -> bool:
    """The Chatwoot contact of this conversation's person: found by its identifier (made by
    an earlier conversation of theirs or an earlier attempt, its name and email brought up
    to date), else a new one. True when it was just made with this conversation's contact
    inbox (`link.contact_source_id`), so that needs no call of its own."""
    identifier = handoff_contact_identifier(conversation)
    inbox_id = link.connection.inbox_id
    contact = client.find_contact(identifier=identifier, inbox_id=inbox_id)
    made = False
    if contact is None:
        try:
            contact = _handoff_contact_create(client, link, conversation, identifier=identifier)
            made = contact.source_id == link.contact_source_id
        except ChatwootError as exc:
            if not _identifier_taken(exc):
                raise
            # Another worker created it between our look-up and our create.
            contact = client.find_contact(identifier=identifier, inbox_id=inbox_id)
            if contact is None:
                raise
    if not made:
        _handoff_contact_update(client, contact, conversation)
    link.chatwoot_contact_id = contact.contact_id
    link.save(update_fields=["chatwoot_contact_id", "updated_at"])
    return made


def _handoff_contact_attributes(conversation: Conversation) -> dict:
    contact = _crm_contact(conversation)
    if contact is None:
        return {"replybase_conversation_id": conversation.pk}
    return {"replybase_contact_id": contact.pk}


def _handoff_contact_create(
    client: ChatwootClient, link, conversation: Conversation, *, identifier: str
) -> ContactCreated:
    name, email = _contact_name(conversation)
    attributes = _handoff_contact_attributes(conversation)
    try:
        return client.create_contact(
            name=name,
            email=email,
            inbox_id=link.connection.inbox_id,
            source_id=link.contact_source_id,
            identifier=identifier,
            additional_attributes=attributes,
        )
    except ChatwootError as exc:
        if exc.status != 422 or not email or _identifier_taken(exc):
            raise
        # The email belongs to an existing Chatwoot contact: keep it as an attribute.
        return client.create_contact(
            name=name,
            inbox_id=link.connection.inbox_id,
            source_id=link.contact_source_id,
            identifier=identifier,
            additional_attributes={**attributes, "email": email},
        )


def _handoff_contact_update(
    client: ChatwootClient, contact: ContactCreated, conversation: Conversation
) -> None:
    """Bring a found contact's name and email up to date with the crm Contact (a returning
    visitor may have told us them since). Only what we know is sent, so nothing an agent
    added is blanked. An email another Chatwoot contact has (422) is kept as an attribute,
    as on create; a failure here is logged and the handoff carries on."""
    crm = _crm_contact(conversation)
    if crm is None:
        return  # an anonymous visitor's contact, found after a crash: made by us as it is
    name = crm.name or crm.email
    email = crm.email.lower()
    changes = {
        "name": name if name and name != contact.name else "",
        "email": email if email and email != contact.email.lower() else "",
    }
    if not any(changes.values()) or (
        not changes["name"] and changes["email"] == contact.email_attribute.lower()
    ):
        return
    try:
        try:
            client.update_contact(contact_id=contact.contact_id, **changes)
        except ChatwootError as exc:
            if exc.status != 422 or not changes["email"]:
                raise
            client.update_contact(
                contact_id=contact.contact_id,
                name=changes["name"],
                additional_attributes={"email": changes["email"]},
            )
    except ChatwootError as exc:
        log.warning(
            "support.handoff_contact_update_failed",
            tenant_id=conversation.tenant_id,
            conversation_id=conversation.pk,
            chatwoot_contact_id=contact.contact_id,
            status=exc.status,
            error=exc.message,
        )


def _handoff_contact_inbox_ensure(client: ChatwootClient, link) -> None:
    """This conversation's contact inbox (`link.contact_source_id`) on the contact, for the
    conversation to be created through: Chatwoot finds it if an earlier attempt made it."""
    source_id = client.create_contact_inbox(
        contact_id=link.chatwoot_contact_id,
        inbox_id=link.connection.inbox_id,
        source_id=link.contact_source_id,
    )
    if source_id != link.contact_source_id:  # a link from before, without a source_id
        link.contact_source_id = source_id
        link.save(update_fields=["contact_source_id", "updated_at"])


def _link_round_start(link: ChatwootConversationLink, conversation: Conversation) -> None:
    """A mirrored conversation handed off again after an agent had answered it: its SLA
    starts over. The visitor waits from the handoff, unless an agent's own message (or a
    reopen in Chatwoot) brought it back: then their next message starts the wait."""
    handed_off_at = conversation.handed_off_at
    if not (link.first_response_at and handed_off_at and handed_off_at > link.first_response_at):
        return
    by_agent = (conversation.bot_state or {}).get("handoff_reason") == "chatwoot_agent"
    link.first_response_at = link.breached_at = None
    link.waiting_since = None if by_agent else handed_off_at
    link.save(update_fields=["first_response_at", "breached_at", "waiting_since", "updated_at"])


def _link_synced(link: ChatwootConversationLink, message: Message, *, handed_off_at) -> None:
    link.last_synced_message_id = message.pk
    fields = ["last_synced_message_id", "updated_at"]
    if message.sender_type == SenderType.VISITOR and message.created_at > (
        handed_off_at or message.created_at
    ):
        link.last_customer_message_at = message.created_at
        fields.append("last_customer_message_at")
        if link.waiting_since is None:
            link.waiting_since = message.created_at
            fields.append("waiting_since")
    link.save(update_fields=fields)


@transaction.atomic
def agent_reply_to_webchat(
    *, link: ChatwootConversationLink, chatwoot_message_id: int, text: str, agent_name: str
) -> Message | None:
    """An agent's public Chatwoot reply on a mirrored conversation, stored for the widget
    (once: the Chatwoot message id is the message's client id)."""
    conversation = Conversation.objects.select_for_update().get(
        tenant_id=link.tenant_id, pk=link.conversation_id
    )
    try:
        with transaction.atomic():
            return _agent_message_store(
                conversation=conversation,
                text=text,
                client_message_id=f"{CHATWOOT_CLIENT_ID_PREFIX}{chatwoot_message_id}",
                metadata={"chatwoot_message_id": chatwoot_message_id, "agent_name": agent_name},
            )
    except IntegrityError:
        return None


def _agent_message_store(
    *, conversation: Conversation, text: str, metadata: dict, client_message_id: str | None = None
) -> Message:
    """A person's reply to a webchat visitor, in the conversation the caller has locked."""
    message = Message.objects.create(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        direction="outbound",
        sender_type=SenderType.AGENT,
        text=text,
        client_message_id=client_message_id,
        metadata=metadata,
    )
    conversation.last_message_at = message.created_at
    conversation.save(update_fields=["last_message_at", "updated_at"])
    webchat_metrics.outbound_stored(conversation)
    return message


def conversation_is_mirrored(*, conversation: Conversation) -> bool:
    """Is this conversation mirrored to Chatwoot (or being mirrored)? Its agents answer it
    there, so the dashboard does not."""
    return ChatwootConversationLink.objects.filter(
        tenant_id=conversation.tenant_id, conversation_id=conversation.pk
    ).exists()


@transaction.atomic
def staff_reply(*, conversation: Conversation, user, text: str) -> Message:
    """A tenant staff member's reply from the dashboard to a webchat visitor, stored for the
    widget (which polls for it) under the conversation's lock, as every writer does. Refused
    for other channels (nothing here sends to them) and for a conversation mirrored to
    Chatwoot (reply there, where its agents see the whole thread)."""
    text = clean_text(text)
    if not text:
        raise InvalidRequest("Write a reply first.")
    if len(text) > MAX_TEXT:
        raise InvalidRequest(f"A reply is at most {MAX_TEXT} characters.")
    conversation = Conversation.objects.select_for_update().get(
        tenant_id=conversation.tenant_id, pk=conversation.pk
    )
    if conversation.channel != "web":
        raise InvalidRequest("Only webchat visitors can be answered from here.")
    if conversation_is_mirrored(conversation=conversation):
        raise InvalidRequest(
            "This conversation is in Chatwoot: reply there, where its agents see it."
        )
    return _agent_message_store(
        conversation=conversation,
        text=text,
        metadata={
            "agent_name": user.get_full_name() or user.get_username(),
            "staff_user_id": user.pk,
        },
    )


def webchat_conversation_resolve(*, link: ChatwootConversationLink) -> None:
    from bots.services import conversation_status_set

    conversation = Conversation.objects.filter(
        tenant_id=link.tenant_id, pk=link.conversation_id
    ).first()
    if conversation is not None and conversation.status != ConversationStatus.RESOLVED:
        conversation_status_set(conversation=conversation, status=ConversationStatus.RESOLVED)


def webchat_conversation_reopen(
    *, link: ChatwootConversationLink, since=None, only_resolved: bool = False
) -> None:
    """Reopened in Chatwoot (`only_resolved`: a resolved one), or an agent wrote in it (at
    `since`; also one back with the bot since): humans own it, so it is handed off again
    here and the visitor's answer goes to Chatwoot. Not for an agent's message from
    before it was resolved (a webhook that arrived late); a status event does not take
    back a conversation staff gave to the bot."""
    from bots.services import conversation_status_set

    conversation = Conversation.objects.filter(
        tenant_id=link.tenant_id, pk=link.conversation_id
    ).first()
    if conversation is None or conversation.status == ConversationStatus.HANDOFF:
        return
    if only_resolved and conversation.status != ConversationStatus.RESOLVED:
        return
    if since is not None and conversation.resolved_at and since < conversation.resolved_at:
        return
    conversation_status_set(
        conversation=conversation, status=ConversationStatus.HANDOFF, reason="chatwoot_agent"
    )


def link_status_set(*, link: ChatwootConversationLink, status: str) -> list[str]:
    """Apply a Chatwoot status to a locked link (not saved); returns the changed fields."""
    if status not in ChatwootStatus.values or link.status == status:
        return []
    link.status = status
    fields = ["status"]
    if status == ChatwootStatus.RESOLVED:
        link.resolved_at = timezone.now()
        link.waiting_since = None
        fields += ["resolved_at", "waiting_since"]
    return fields


# --- retry queue -----------------------------------------------------------------------------------


def _retry_delay(attempts: int) -> timedelta:
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), RETRY_MAX_DELAY)


def retry_enqueue(
    *, connection: ChatwootConnection, operation: str, object_id: int, error: ChatwootError
) -> OutboundRetry:
    """Park a failed operation (or count one more failure of an already parked one)."""
    now = timezone.now()
    with transaction.atomic():
        row = (
            OutboundRetry.objects.select_for_update()
            .filter(operation=operation, object_id=object_id, status=RetryStatus.QUEUED)
            .first()
        )
        if row is None:
            try:
                with transaction.atomic():
                    row = OutboundRetry.objects.create(
                        tenant_id=connection.tenant_id,
                        connection=connection,
                        operation=operation,
                        object_id=object_id,
                        retryable=error.retryable,
                        last_error=error.message[:2000],
                        next_attempt_at=now + _retry_delay(1),
                    )
            except IntegrityError:
                row = OutboundRetry.objects.select_for_update().get(
                    operation=operation, object_id=object_id, status=RetryStatus.QUEUED
                )
            else:
                metrics.RETRY_QUEUED.labels(operation).inc()
                log.warning(
                    "support.retry_queued",
                    tenant_id=connection.tenant_id,
                    operation=operation,
                    object_id=object_id,
                    error=error.message,
                )
                return row
        row.attempts += 1
        row.retryable = error.retryable
        row.last_error = error.message[:2000]
        row.next_attempt_at = now + _retry_delay(row.attempts)
        if row.attempts >= RETRY_MAX_ATTEMPTS:
            row.status = RetryStatus.FAILED
        row.save(
            update_fields=[
                "attempts",
                "retryable",
                "last_error",
                "next_attempt_at",
                "status",
                "updated_at",
            ]
        )
    return row


def retry_mark_done(*, operation: str, object_id: int) -> None:
    OutboundRetry.objects.filter(
        operation=operation,
        object_id=object_id,
        status__in=[RetryStatus.QUEUED, RetryStatus.FAILED],
    ).update(status=RetryStatus.DONE, done_at=timezone.now(), updated_at=timezone.now())


def retry_run(*, retry: OutboundRetry, inline: bool = False) -> bool:
    """Run a parked operation again (it marks its row done, or counts the failure)."""
    if retry.status == RetryStatus.DONE:
        return True
    if retry.status == RetryStatus.FAILED:
        # A manual retry of a row that gave up: queue it again (unless a newer one is).
        if OutboundRetry.objects.filter(
            operation=retry.operation, object_id=retry.object_id, status=RetryStatus.QUEUED
        ).exists():
            OutboundRetry.objects.filter(pk=retry.pk).update(status=RetryStatus.DONE)
        else:
            OutboundRetry.objects.filter(pk=retry.pk).update(
                status=RetryStatus.QUEUED, attempts=RETRY_MAX_ATTEMPTS - 1
            )
    if retry.operation == RetryOperation.PRIVATE_NOTE:
        item = (
            ApprovalItem.objects.select_related("connection", "link")
            .filter(pk=retry.object_id)
            .first()
        )
        if item is None:
            retry_mark_done(operation=retry.operation, object_id=retry.object_id)
            return True
        return approval_item_note_post(item=item, from_retry=True, inline=inline)
    if retry.operation == RetryOperation.REPLY:
        return approval_item_send(item_id=retry.object_id, from_retry=True, inline=inline)
    if retry.operation == RetryOperation.HANDOFF_SYNC:
        return handoff_sync(conversation_id=retry.object_id, from_retry=True, inline=inline).ok
    return False


def retry_due_claim(*, now=None, limit: int = 50) -> list[int]:
    """Rows whose next attempt is due, pushed 10 minutes ahead so the next beat does not
    queue them again while they run (a failure sets the real next attempt)."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            OutboundRetry.objects.select_for_update(skip_locked=True)
            .filter(status=RetryStatus.QUEUED, retryable=True, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:limit]
        )
        OutboundRetry.objects.filter(pk__in=ids).update(next_attempt_at=now + RETRY_CLAIM)
    return ids
