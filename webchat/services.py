import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import NotSupportedError, transaction
from django.db.models import Q
from django.utils import timezone

from bots.services import InboundResult, bot_state_new, inbound_handle, reply_overdue_resolve
from core.exceptions import InvalidRequest
from core.rows import is_stale_plan
from crm.models import (
    Channel,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    SenderType,
)
from support.services import handoff_message_forward_schedule
from webchat import metrics
from webchat.exceptions import ConversationNotFound, IdentityInvalid, TokenInvalid
from webchat.hotpath import conversation_lock_and_insert
from webchat.models import EventType, WebChatEvent, WebChatSession, WebChatSite, new_site_key
from webchat.origins import InvalidRule, validate_rules
from webchat.selectors import (
    SiteSnapshot,
    session_find_for_resume,
    session_get,
    site_cache_forget,
    visitor_contact_latest,
)
from webchat.tokens import SessionClaims, identity_verify, session_token_issue, session_token_read

VISITOR_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
INCIDENTS_STORED_PER_MINUTE = 60
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


# --- Sites -----------------------------------------------------------------------------


def site_domains_clean(domains: list[str]) -> list[str]:
    try:
        return validate_rules(domains, allow_any=settings.WEBCHAT_ALLOW_ANY_ORIGIN)
    except InvalidRule as exc:
        raise InvalidRequest(str(exc)) from exc


def site_create(
    *, tenant, name: str, bot=None, allowed_domains: list[str] = (), **fields
) -> WebChatSite:
    site = WebChatSite(
        tenant=tenant,
        name=name,
        bot=bot,
        allowed_domains=site_domains_clean(list(allowed_domains)),
        **fields,
    )
    site.set_identity_secret(uuid.uuid4().hex + uuid.uuid4().hex)
    site.full_clean()
    site.save()
    return site


def site_key_rotate(*, site: WebChatSite, grace: timedelta) -> WebChatSite:
    """Issue a new public key; the old one keeps working for `grace` so live pages don't break."""
    old_key = site.site_key
    site.previous_site_key = old_key
    site.previous_key_expires_at = timezone.now() + grace
    site.site_key = new_site_key()
    site.save(
        update_fields=["site_key", "previous_site_key", "previous_key_expires_at", "updated_at"]
    )
    site_cache_forget(site_id=site.pk, keys=[old_key, site.site_key])
    return site


# --- Sessions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PageInfo:
    url: str = ""
    referrer: str = ""
    locale: str = ""
    utm: dict | None = None


@dataclass
class StartedSession:
    session: WebChatSession
    token: str
    expires_at: object
    resumed: bool
    messages: list[Message]


def _contact_for_identity(*, site: WebChatSite, user_id: str, user_hash: str) -> Contact:
    if not identity_verify(site.identity_secret, user_id, user_hash):
        raise IdentityInvalid()
    contact, _ = Contact.objects.get_or_create(tenant_id=site.tenant_id, external_id=user_id)
    return contact


def _resumable_session(
    *,
    site: SiteSnapshot,
    origin: str,
    session_token: str,
    visitor_id: str,
    conversation_id: int | None,
) -> tuple[WebChatSession | None, str]:
    """The session to resume (None: start a conversation) and the visitor id to keep."""
    if session_token:
        claims = session_token_read(session_token, max_age=settings.WEBCHAT_RESUME_MAX_AGE)
        if claims.site_id != site.id:
            raise TokenInvalid("That session token belongs to another site.")
        if claims.origin != origin:
            raise TokenInvalid("That session token was issued to another website.")
        session = session_get(site_id=site.id, session_id=claims.session_id)
        if session is not None and session.anonymized_at is not None:
            # Data retention forgot this visitor: so does the chat (a new visitor id too).
            return None, ""
        if session is not None and session.conversation.status != ConversationStatus.RESOLVED:
            return session, session.visitor_id
        visitor_id, conversation_id = claims.visitor_id, None
    if not visitor_id:
        return None, ""
    session = session_find_for_resume(
        site_id=site.id, visitor_id=visitor_id, conversation_id=conversation_id
    )
    if session is None and conversation_id is not None:
        raise ConversationNotFound()
    if session is not None and session.conversation.status == ConversationStatus.RESOLVED:
        return None, visitor_id
    return session, visitor_id


@transaction.atomic
def session_start(
    *,
    site: SiteSnapshot,
    origin: str,
    visitor_id: str = "",
    session_token: str = "",
    conversation_id: int | None = None,
    user_id: str = "",
    user_hash: str = "",
    page: PageInfo,
    user_agent: str = "",
    ip_hash: str = "",
) -> StartedSession:
    """Create or resume the visitor, session and conversation (the challenge is already consumed)."""
    if visitor_id and not VISITOR_ID_RE.match(visitor_id):
        raise InvalidRequest("visitor_id: use the id this API gave you.")
    site_row = WebChatSite.objects.select_related("bot").get(pk=site.id)
    contact = (
        _contact_for_identity(site=site_row, user_id=user_id, user_hash=user_hash)
        if user_id
        else None
    )
    now = timezone.now()
    expires = now + timedelta(seconds=settings.WEBCHAT_SESSION_TTL)
    metadata = {
        "origin": origin,
        "page_url": page.url,
        "referrer": page.referrer,
        "locale": page.locale,
        "utm": page.utm or {},
        "user_agent": user_agent[:400],
        "ip_hash": ip_hash,
        "last_seen_at": now,
        "expires_at": expires,
    }
    session, visitor_id = _resumable_session(
        site=site,
        origin=origin,
        session_token=session_token,
        visitor_id=visitor_id,
        conversation_id=conversation_id,
    )
    if session is not None and _held_by_another_user(session.conversation, contact):
        session = None
    resumed = session is not None
    if resumed:
        for name, value in metadata.items():
            setattr(session, name, value)
        session.save(update_fields=[*metadata, "updated_at"])
        conversation = session.conversation
        if contact is not None and conversation.contact_id != contact.pk:
            conversation.contact = contact
            conversation.save(update_fields=["contact", "updated_at"])
    else:
        visitor = visitor_id or uuid.uuid4().hex
        if contact is None and visitor_id:
            contact = _returning_visitor_contact(site_id=site.id, visitor_id=visitor_id)
        conversation = Conversation.objects.create(
            tenant_id=site.tenant_id,
            channel=Channel.WEB,
            bot=site_row.bot,
            contact=contact,
            external_session_id=visitor,
            bot_state=bot_state_new(),
        )
        session = WebChatSession.objects.create(
            tenant_id=site.tenant_id,
            site_id=site.id,
            visitor_id=visitor,
            conversation=conversation,
            **metadata,
        )
    token, expires_at = session_token_issue(
        SessionClaims(
            session_id=session.pk,
            site_id=site.id,
            visitor_id=session.visitor_id,
            conversation_id=session.conversation_id,
            origin=origin,
            tenant_id=site.tenant_id,
        )
    )
    metrics.SESSIONS.labels(str(resumed).lower()).inc()
    recent = Message.objects.filter(
        tenant_id=site.tenant_id, conversation_id=session.conversation_id
    )
    messages = list(reversed(recent.order_by("-id")[:50]))
    return StartedSession(session, token, expires_at, resumed, messages)


def _held_by_another_user(conversation: Conversation, contact: Contact | None) -> bool:
    """Is this the conversation of a verified user other than the one starting this
    session (another user signed in, or nobody)? Then it does not resume: on a shared
    browser the next person starts their own. A lead's conversation (no contact, or an
    email they gave) still goes to the user who signs in, as a lead becomes a user."""
    if conversation.contact_id is None or (
        contact is not None and conversation.contact_id == contact.pk
    ):
        return False
    return Contact.objects.filter(pk=conversation.contact_id).exclude(external_id="").exists()


def _returning_visitor_contact(*, site_id: int, visitor_id: str) -> Contact | None:
    """A returning visitor's new conversation is theirs as the last one was: the email they
    gave then goes with it (and the contact counts as active again for data retention)."""
    contact = visitor_contact_latest(site_id=site_id, visitor_id=visitor_id)
    if contact is not None:
        contact.save(update_fields=["updated_at"])
    return contact


def session_touch(*, session: WebChatSession) -> None:
    """Keep last_seen_at roughly current without a write on every request."""
    session.last_seen_at = _session_seen(session.pk, session.last_seen_at)


def _session_seen(session_id: int, last_seen_at):
    now = timezone.now()
    if now - last_seen_at <= LAST_SEEN_RESOLUTION:
        return last_seen_at
    WebChatSession.objects.filter(pk=session_id).update(last_seen_at=now)
    return now


# --- Messages ----------------------------------------------------------------------------


@dataclass
class Received:
    message: Message
    created: bool
    replies: list[Message]
    pending_reply: bool


def _replies_after(message: Message) -> list[Message]:
    """The replies stored after `message`: with a higher id, or (committed while it waited
    for the conversation's lock, so with a lower id) timestamped after it."""
    return list(
        Message.objects.filter(
            Q(id__gt=message.pk) | Q(created_at__gte=message.created_at),
            tenant_id=message.tenant_id,
            conversation_id=message.conversation_id,
            direction=Direction.OUTBOUND,
        ).order_by("id")[:20]
    )


def _pending(conversation_id: int) -> bool:
    return Conversation.objects.filter(
        pk=conversation_id, pending_reply_since__isnull=False
    ).exists()


def session_refusal(*, session: WebChatSession | None, claims: SessionClaims) -> Exception | None:
    """Why a token's session no longer admits it (None: it does)."""
    if session is None or session.visitor_id != claims.visitor_id:
        return TokenInvalid("This session no longer exists. Start a new session.")
    if session.conversation_id != claims.conversation_id:
        return ConversationNotFound()
    return None


def message_receive(
    *, site: SiteSnapshot, claims: SessionClaims, text: str, client_message_id: str
) -> Received:
    """Store a visitor message once (idempotent on client_message_id) and let the bot answer.

    The conversation's row lock is taken first, by the query that also checks the token's
    session, so every message of a conversation is inserted under its lock and ids follow
    commit order: a poll cursor never passes a message still to be committed. The answer
    holds the replies stored for this message. An AI reply is computed by a worker and
    reaches the widget by polling; only when tasks run in-process
    (`CELERY_TASK_ALWAYS_EAGER`: embedded mode, tests) is it already stored at commit, and
    then it is read back so the widget gets it at once.
    """
    for attempt in (1, 2):
        try:
            message, conversation, waited, handled = _message_store_and_handle(
                site=site, claims=claims, text=text, client_message_id=client_message_id
            )
            break
        except NotSupportedError as exc:
            # A migration changed a column the locking statement returns: its rollback made
            # psycopg forget the stale statement, so one retry prepares it anew.
            if attempt == 2 or not is_stale_plan(exc):
                raise
    created = handled is not None
    _session_seen(claims.session_id, conversation.session_last_seen_at)
    if not created:
        message = Message.objects.get(
            conversation_id=claims.conversation_id, client_message_id=client_message_id
        )
        return Received(message, False, _replies_after(message), _pending(claims.conversation_id))
    metrics.MESSAGES.labels("inbound").inc()
    replies, pending = handled.replies, handled.reply_owed
    if waited or (handled.pending and current_app.conf.task_always_eager):
        replies, pending = _replies_after(message), _pending(claims.conversation_id)
    return Received(message, True, replies, pending)


def visitor_message(
    *, tenant_id: int, claims: SessionClaims, text: str, client_message_id: str
) -> Message:
    """The unsaved message a visitor sends through the token `claims` were read from."""
    return Message(
        tenant_id=tenant_id,
        conversation_id=claims.conversation_id,
        direction=Direction.INBOUND,
        sender_type=SenderType.VISITOR,
        text=text,
        client_message_id=client_message_id,
        metadata={"session_id": claims.session_id},
    )


def _message_store_and_handle(
    *, site: SiteSnapshot, claims: SessionClaims, text: str, client_message_id: str
) -> tuple[Message, Conversation, bool, InboundResult | None]:
    """`message_receive`'s transaction: (the message, its conversation, whether it waited
    for the lock behind another writer, the bot's handling or None for a retry)."""
    message = visitor_message(
        tenant_id=site.tenant_id, claims=claims, text=text, client_message_id=client_message_id
    )
    handled = None
    with transaction.atomic():
        conversation, created = conversation_lock_and_insert(
            tenant_id=site.tenant_id, claims=claims, message=message
        )
        if conversation is None:
            session = session_get(site_id=site.id, session_id=claims.session_id)
            raise session_refusal(session=session, claims=claims) or ConversationNotFound()
        # Stored while this message waited for the lock (an AI reply, an agent's): lower id
        # than this message, so a widget whose cursor follows the POST answer (as widgets
        # before this version and other clients do) would never poll it: answer it here.
        waited = bool(
            conversation.last_message_at and conversation.last_message_at > message.created_at
        )
        if created:
            handled = inbound_handle(message=message, locked=conversation)
            handoff_message_forward_schedule(message=message)  # to Chatwoot, on commit
    return message, conversation, waited, handled


def messages_poll(*, session: WebChatSession, after: int) -> tuple[list[Message], bool]:
    """New messages since `after`; delivers an overdue AI reply's fallback first."""
    conversation = session.conversation
    if conversation.pending_reply_since is not None:
        reply_overdue_resolve(conversation=conversation)
        conversation.refresh_from_db(fields=["pending_reply_since"])
    messages = list(
        Message.objects.filter(
            tenant_id=session.tenant_id, conversation_id=conversation.pk, id__gt=after
        ).order_by("id")[:100]
    )
    return messages, conversation.pending_reply_since is not None


# --- Events and incidents ------------------------------------------------------------------


def events_record(*, site: SiteSnapshot, session: WebChatSession | None, events: list[dict]) -> int:
    rows = [
        WebChatEvent(
            tenant_id=site.tenant_id,
            site_id=site.id,
            session=session,
            type=event["type"],
            payload={"at": event.get("at"), "data": event.get("data") or {}},
        )
        for event in events
    ]
    WebChatEvent.objects.bulk_create(rows)
    for row in rows:
        metrics.EVENTS.labels(row.type).inc()
    return len(rows)


def incident_record(
    *, site: SiteSnapshot, type: EventType, detail: dict, session_id: int | None = None
) -> None:
    """Store a security incident (blocked origin, bad token, rate limit) for the dashboards.

    Stored rows are capped per site and type per minute, so an attack cannot turn refusals
    into unbounded writes; Prometheus counters count every refusal.
    """
    bucket = f"webchat:incidents:{site.id}:{type}:{int(timezone.now().timestamp() // 60)}"
    cache.add(bucket, 0, 120)
    try:
        count = cache.incr(bucket)
    except ValueError:
        count = 1
    if count > INCIDENTS_STORED_PER_MINUTE:
        return
    WebChatEvent.objects.create(
        tenant_id=site.tenant_id, site_id=site.id, session_id=session_id, type=type, payload=detail
    )
