"""Signals serve two things only: cache invalidation and the CORS allowlist."""

from django.conf import settings
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from webchat.models import WebChatSite
from webchat.origins import origin_allowed
from webchat.selectors import site_cache_forget

CORS_CACHE_PREFIX = "webchat:cors:v1:"
CORS_GENERATION_KEY = CORS_CACHE_PREFIX + "generation"
CORS_CACHE_SECONDS = 60


def _cors_generation() -> int:
    return cache.get_or_set(CORS_GENERATION_KEY, 1, None)


@receiver([post_save, post_delete], sender=WebChatSite)
def forget_site(sender, instance: WebChatSite, **kwargs) -> None:
    site_cache_forget(site_id=instance.pk, keys=[instance.site_key, instance.previous_site_key])
    # A new generation makes every cached CORS answer stale at once.
    cache.add(CORS_GENERATION_KEY, 1, None)
    cache.incr(CORS_GENERATION_KEY)


def cors_origin_allowed(origin: str) -> bool:
    """Does any active site allow this origin? django-cors-headers asks on every API request.

    Only origins some site allows get CORS headers; each route then checks the origin
    strictly against the one site the request is for. The cached answer carries the
    generation it was computed in, so one round trip reads both.
    """
    answer_key = f"{CORS_CACHE_PREFIX}answer:{origin[:300]}"
    cached = cache.get_many([CORS_GENERATION_KEY, answer_key])
    generation = cached.get(CORS_GENERATION_KEY)
    if generation is None:
        generation = _cors_generation()
    answer = cached.get(answer_key)
    if answer is not None and answer[0] == generation:
        return answer[1]
    allowed = False
    rules = WebChatSite.objects.filter(active=True).values_list("allowed_domains", flat=True)
    for site_rules in rules.iterator(chunk_size=2000):
        # Passed as stored: origin_allowed skips whatever is not a list of rules.
        if origin_allowed(origin, site_rules, allow_any=settings.WEBCHAT_ALLOW_ANY_ORIGIN):
            allowed = True
            break
    cache.set(answer_key, (generation, allowed), CORS_CACHE_SECONDS)
    return allowed


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
