import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.utils import timezone

from crm.models import Contact, Conversation, ConversationStatus, Message
from webchat.models import WebChatSession, WebChatSite

SITE_CACHE_PREFIX = "webchat:site:v1:"
# What `webchat.models.new_site_key` makes ("wk_" + URL-safe base64), with room to spare.
SITE_KEY_SHAPE = re.compile(r"wk_[A-Za-z0-9_-]{8,61}")


@dataclass(frozen=True)
class SiteSnapshot:
    """What the public API needs of a site, cached so `config` costs no database query."""

    id: int
    tenant_id: int
    site_key: str
    active: bool
    allowed_domains: list[str]
    pow_difficulty: int
    telemetry: bool
    public: dict = field(default_factory=dict)


def _snapshot(site: WebChatSite) -> SiteSnapshot:
    return SiteSnapshot(
        id=site.pk,
        tenant_id=site.tenant_id,
        site_key=site.site_key,
        active=site.active,
        allowed_domains=list(site.allowed_domains or []),
        pow_difficulty=site.pow_difficulty,
        telemetry=site.telemetry_enabled,
        public={
            "title": site.title,
            "color": site.color,
            "position": site.position,
            "welcome_message": site.welcome_message,
            "launcher_text": site.launcher_text,
            "require_consent": site.require_consent,
            "telemetry": site.telemetry_enabled,
            "locale": site.locale,
        },
    )


def site_snapshot_for_key(
    *, site_key: str, before_lookup: Callable[[], None] | None = None
) -> SiteSnapshot | None:
    """The active site for a public key (current key, or the previous one during its grace).
    `before_lookup` runs when the cache cannot tell and the database is to be asked (what
    a flood of made-up keys costs); it may raise to refuse."""
    if not SITE_KEY_SHAPE.fullmatch(site_key or ""):
        return None  # never a site: no query, and no negative cache entry per junk key
    cache_key = SITE_CACHE_PREFIX + site_key
    cached = cache.get(cache_key)
    if cached is not None:
        return SiteSnapshot(**cached) if cached else None
    if before_lookup is not None:
        before_lookup()
    site = (
        WebChatSite.objects.filter(active=True)
        .filter(
            Q(site_key=site_key)
            | Q(previous_site_key=site_key, previous_key_expires_at__gt=timezone.now())
        )
        .first()
    )
    snapshot = _snapshot(site) if site else None
    ttl = settings.WEBCHAT_CONFIG_CACHE_SECONDS
    if site is not None and site.site_key != site_key and site.previous_key_expires_at:
        remaining = (site.previous_key_expires_at - timezone.now()).total_seconds()
        ttl = max(1, min(ttl, int(remaining)))
    cache.set(cache_key, asdict(snapshot) if snapshot else {}, ttl)
    return snapshot


def site_id_cache_key(site_id: int) -> str:
    return f"{SITE_CACHE_PREFIX}id:{site_id}"


_UNREAD = object()


def site_snapshot_for_id(*, site_id: int, cached=_UNREAD) -> SiteSnapshot | None:
    """The active site by id (for requests that carry a session token). `cached`: what
    the caller already read from the cache under `site_id_cache_key` (None: nothing)."""
    cache_key = site_id_cache_key(site_id)
    if cached is _UNREAD:
        cached = cache.get(cache_key)
    if cached is not None:
        return SiteSnapshot(**cached) if cached else None
    site = WebChatSite.objects.filter(pk=site_id, active=True).first()
    snapshot = _snapshot(site) if site else None
    cache.set(
        cache_key, asdict(snapshot) if snapshot else {}, settings.WEBCHAT_CONFIG_CACHE_SECONDS
    )
    return snapshot


def site_cache_forget(*, site_id: int, keys: list[str]) -> None:
    names = [SITE_CACHE_PREFIX + key for key in keys if key]
    cache.delete_many([*names, site_id_cache_key(site_id)])


def site_get(*, tenant_id: int, site_id: int) -> WebChatSite | None:
    return WebChatSite.objects.filter(tenant_id=tenant_id, pk=site_id).first()


def site_list(*, tenant) -> QuerySet[WebChatSite]:
    return WebChatSite.objects.filter(tenant=tenant).select_related("bot").order_by("name")


def session_get(*, site_id: int, session_id: int) -> WebChatSession | None:
    sessions = WebChatSession.objects.filter(site_id=site_id, pk=session_id)
    try:  # unique on pk: no ORDER BY/LIMIT for the database to plan
        return sessions.select_related("conversation").get()
    except WebChatSession.DoesNotExist:
        return None


def session_find_for_resume(
    *, site_id: int, visitor_id: str, conversation_id: int | None
) -> WebChatSession | None:
    """The visitor's latest session on this site (in the given conversation if named)."""
    sessions = _visitor_sessions(site_id=site_id, visitor_id=visitor_id)
    if conversation_id is not None:
        sessions = sessions.filter(conversation_id=conversation_id)
    else:
        sessions = sessions.exclude(conversation__status=ConversationStatus.RESOLVED)
    return sessions.first()


def _visitor_sessions(*, site_id: int, visitor_id: str) -> QuerySet[WebChatSession]:
    """The visitor's sessions on this site with their conversations, latest seen first."""
    return (
        WebChatSession.objects.filter(site_id=site_id, visitor_id=visitor_id)
        .select_related("conversation")
        .order_by("-last_seen_at")
    )


def visitor_contact_latest(*, site_id: int, visitor_id: str) -> Contact | None:
    """The contact of the visitor's latest conversation on this site when it is an
    unverified one (an email they gave) of the site's tenant, not anonymized since. A
    verified contact is never handed on, nor one from before a later conversation without
    it: the next chat on that browser may be someone else's."""
    sessions = _visitor_sessions(site_id=site_id, visitor_id=visitor_id)
    session = sessions.select_related("conversation__contact").first()
    contact = session.conversation.contact if session is not None else None
    if (
        contact is None
        or contact.external_id
        or contact.anonymized_at is not None
        or contact.tenant_id != session.tenant_id
    ):
        return None
    return contact


def message_list_after(
    *, conversation: Conversation, after: int, limit: int = 100
) -> list[Message]:
    return list(
        Message.objects.filter(
            tenant_id=conversation.tenant_id, conversation_id=conversation.pk, id__gt=after
        ).order_by("id")[:limit]
    )


def message_list_recent(*, conversation: Conversation, limit: int = 50) -> list[Message]:
    recent = Message.objects.filter(
        tenant_id=conversation.tenant_id, conversation_id=conversation.pk
    ).order_by("-id")[:limit]
    return list(reversed(recent))
