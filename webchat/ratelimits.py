"""Per-IP, per-site and per-session limits on the public API, counted in the shared cache
(Redis in production), so they hold across any number of web instances.

The counters are django-ratelimit's: its rates ("20/m", "100/5m"), its fixed windows with
a per-key jitter, its cache keys and its `RATELIMIT_*` settings. Its `is_ratelimited` costs
two cache round trips per limit (add, then incr) and a route has up to three limits, so
all of a request's counters are bumped here in one round trip (`core.cache.counters_hit`).
"""

import hashlib
import ipaddress
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from django_ratelimit import ALL
from django_ratelimit.core import EXPIRATION_FUDGE, _get_window, _make_cache_key, _split_rate

from core.cache import counters_hit
from core.exceptions import RateLimited
from webchat import metrics


def client_ip(request: HttpRequest) -> str:
    """The visitor's address: REMOTE_ADDR, or, behind `WEBCHAT_TRUSTED_PROXIES` proxies that
    each append the address they were reached from to X-Forwarded-For, the entry that many
    from its end. What comes before it is whatever the client wrote, never trusted."""
    proxies = settings.WEBCHAT_TRUSTED_PROXIES
    if proxies:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= proxies:
            return hops[-proxies][:64]
    return request.META.get("REMOTE_ADDR", "")[:64]


def ip_bucket(ip: str) -> str:
    """What a per-IP limit counts: the address, or for IPv6 its /64 (one subscriber's
    network: each of its addresses alone would be a bucket of its own)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6 and address.ipv4_mapped is None:
        return f"{ipaddress.IPv6Network((address, 64), strict=False).network_address}/64"
    return str(getattr(address, "ipv4_mapped", None) or address)


def ip_hash(ip: str) -> str:
    """A salted, truncated hash: enough to count abuse, not enough to recover the address."""
    return hashlib.sha256(f"{settings.SECRET_KEY}:ip:{ip}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Limit:
    """One limit a request counts against: django-ratelimit's key for its current window."""

    scope: str  # ip | address | site | session
    rate: str
    limit: int
    window: int  # when the window ends (unix time)
    key: str
    ttl: int  # seconds the counter lives after its first hit


def limits_for(
    request: HttpRequest, *, route: str, site_id: int | None = None, session_id: int | None = None
) -> list[Limit]:
    """The limits of `route` this request counts against, in the order of the route's
    settings (IP on this site, the address on every site, site, session)."""
    if not settings.RATELIMIT_ENABLE:
        return []
    ip = ip_bucket(client_ip(request))
    values = {
        # per site: an office or carrier NAT's visitors of one site never use up another's
        "ip": f"site:{site_id}:{ip}" if site_id is not None else ip,
        # ... but one address's requests to every site together have a (higher) bound too
        "address": ip,
        "site": f"site:{site_id}" if site_id is not None else None,
        "session": f"session:{session_id}" if session_id is not None else None,
    }
    limits = []
    for scope, rate in settings.WEBCHAT_RATE_LIMITS.get(route, {}).items():
        value = values.get(scope)
        if value is None:
            continue
        limit, period = _split_rate(rate)
        window = _get_window(value, period)
        key = _make_cache_key(f"webchat:{route}:{scope}", window, rate, value, ALL)
        limits.append(Limit(scope, rate, limit, window, key, period + EXPIRATION_FUDGE))
    return limits


def counters(limits: list[Limit]) -> dict[str, tuple[int, int]]:
    """The limits as `core.cache` counters (key -> (ttl, limit))."""
    return {limit.key: (limit.ttl, limit.limit) for limit in limits}


def refuse_if_over(route: str, limits: list[Limit], counts: list[int]) -> None:
    """Raise RateLimited for the first limit its count passed (Retry-After: the seconds left
    in its window)."""
    for limit, count in zip(limits, counts, strict=False):
        if count > limit.limit:
            metrics.RATE_LIMITED.labels(route, limit.scope).inc()
            raise RateLimited(
                f"Too many requests ({limit.scope} limit {limit.rate}). Try again later.",
                retry_after=max(1, limit.window - int(time.time())),
            )


def enforce(
    request: HttpRequest, *, route: str, site_id: int | None = None, session_id: int | None = None
) -> None:
    """Count this request against the limits of `route` in order (IP, site, session);
    raise RateLimited on the first one exceeded. As with django-ratelimit checked one by
    one, a refused request is not counted against the later limits."""
    limits = limits_for(request, route=route, site_id=site_id, session_id=session_id)
    if limits:
        counts = counters_hit(caches[settings.RATELIMIT_USE_CACHE], counters(limits))
        refuse_if_over(route, limits, counts)
