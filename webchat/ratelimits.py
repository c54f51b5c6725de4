"""Per-IP, per-site and per-session limits on the public API, counted in the shared cache
(Redis in production), so they hold across any number of web instances.

The counters are django-ratelimit's: its rates ("20/m", "100/5m"), its fixed windows with
a per-key jitter, its cache keys and its `RATELIMIT_*` settings. Its `is_ratelimited` costs
two cache round trips per limit (add, then incr) and a route has up to three limits, so
all of a request's counters are bumped here in one round trip (`core.cache.counters_hit`).
"""

import hashlib
import time

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from django_ratelimit import ALL
from django_ratelimit.core import EXPIRATION_FUDGE, _get_window, _make_cache_key, _split_rate

from core.cache import counters_hit
from core.exceptions import RateLimited
from webchat import metrics


def client_ip(request: HttpRequest) -> str:
    if settings.WEBCHAT_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return request.META.get("REMOTE_ADDR", "")[:64]


def ip_hash(ip: str) -> str:
    """A salted, truncated hash: enough to count abuse, not enough to recover the address."""
    return hashlib.sha256(f"{settings.SECRET_KEY}:ip:{ip}".encode()).hexdigest()[:16]


def enforce(
    request: HttpRequest, *, route: str, site_id: int | None = None, session_id: int | None = None
) -> None:
    """Count this request against the limits of `route` in order (IP, site, session);
    raise RateLimited on the first one exceeded (Retry-After: the seconds left in its
    window). As with django-ratelimit checked one by one, a refused request is not
    counted against the later limits."""
    if not settings.RATELIMIT_ENABLE:
        return
    values = {
        "ip": client_ip(request),
        "site": f"site:{site_id}" if site_id is not None else None,
        "session": f"session:{session_id}" if session_id is not None else None,
    }
    limits = []  # (scope, rate, limit, window end, cache key, seconds the key lives)
    for scope, rate in settings.WEBCHAT_RATE_LIMITS[route].items():
        value = values.get(scope)
        if value is None:
            continue
        limit, period = _split_rate(rate)
        window = _get_window(value, period)
        key = _make_cache_key(f"webchat:{route}:{scope}", window, rate, value, ALL)
        limits.append((scope, rate, limit, window, key, period + EXPIRATION_FUDGE))
    if not limits:
        return
    counts = counters_hit(
        caches[settings.RATELIMIT_USE_CACHE],
        {key: (ttl, limit) for _scope, _rate, limit, _window, key, ttl in limits},
    )
    for (scope, rate, limit, window, _key, _ttl), count in zip(limits, counts, strict=False):
        if count > limit:
            metrics.RATE_LIMITED.labels(route, scope).inc()
            raise RateLimited(
                f"Too many requests ({scope} limit {rate}). Try again later.",
                retry_after=max(1, window - int(time.time())),
            )
