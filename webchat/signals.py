"""Signals serve two things only: cache invalidation and the CORS allowlist."""

import threading
import time
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from webchat.models import WebChatSite
from webchat.origins import OriginIndex
from webchat.selectors import site_cache_forget

CORS_CACHE_PREFIX = "webchat:cors:v1:"
CORS_GENERATION_KEY = CORS_CACHE_PREFIX + "generation"
CORS_CACHE_SECONDS = 60


def _cors_generation() -> str:
    # A random value, not a counter: after the cache lost it (a flush), a new one can never
    # be one an index in some process was built for.
    return cache.get_or_set(CORS_GENERATION_KEY, uuid.uuid4().hex, None)


def _cors_generation_bump() -> None:
    cache.set(CORS_GENERATION_KEY, uuid.uuid4().hex, None)


@receiver([post_save, post_delete], sender=WebChatSite)
def forget_site(sender, instance: WebChatSite, **kwargs) -> None:
    site_cache_forget(site_id=instance.pk, keys=[instance.site_key, instance.previous_site_key])
    # A new generation makes every process rebuild its CORS index; after the commit, so
    # none rebuilds it from the rows as they were before this change.
    _cors_generation_bump()
    transaction.on_commit(_cors_generation_bump)


def cors_origin_allowed(origin: str) -> bool:
    """Does any active site allow this origin? django-cors-headers asks on every API request.

    Only origins some site allows get CORS headers; each route then checks the origin
    strictly against the one site the request is for. Every active site's rules are held
    in this process as one index per generation (one query when any site changed), so an
    origin nobody allows costs a cache read and a dictionary lookup, however many sites
    there are and however many made-up origins a client sends.
    """
    generation = cache.get(CORS_GENERATION_KEY)
    if generation is None:
        generation = _cors_generation()
    return _origin_index(generation).allows(origin, allow_any=settings.WEBCHAT_ALLOW_ANY_ORIGIN)


# (generation, built at, index); rebuilt for a new generation, or after CORS_CACHE_SECONDS
# whatever happens (a lost cache write can leave an index stale at most that long).
_index: tuple[str, float, OriginIndex] | None = None
_index_lock = threading.Lock()


def _origin_index(generation: str) -> OriginIndex:
    global _index

    def fresh(held) -> bool:
        return (
            held is not None
            and held[0] == generation
            and time.monotonic() - held[1] < CORS_CACHE_SECONDS
        )

    held = _index
    if fresh(held):
        return held[2]
    with _index_lock:
        if not fresh(_index):
            rules = WebChatSite.objects.filter(active=True).values_list(
                "allowed_domains", flat=True
            )
            index = OriginIndex.of(rules.iterator(chunk_size=2000))
            _index = (generation, time.monotonic(), index)
        return _index[2]


# Set by the public API on the request once the origin passed the strict check against the
# site the request is for: that site is active and allows it, which is all CORS asks.
VERIFIED_ORIGIN_ATTR = "webchat_verified_origin"


def cors_check_request(sender, request, **kwargs) -> bool:
    origin = request.headers.get("Origin")
    if not origin or not request.path.startswith("/api/webchat/"):
        return False
    if getattr(request, VERIFIED_ORIGIN_ATTR, None) == origin:
        return True  # no cache read: the response's own site check said yes
    return cors_origin_allowed(origin)
