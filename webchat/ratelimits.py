"""Per-IP, per-site and per-session limits on the public API, counted in the shared cache
(Redis in production) by django-ratelimit, so they hold across any number of web instances."""

import hashlib

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import is_ratelimited

from core.exceptions import RateLimited
from webchat import metrics

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def period_seconds(rate: str) -> int:
    """Seconds in the window of a django-ratelimit rate like '20/m' or '100/5m'."""
    _, period = rate.split("/", 1)
    multiplier = int(period[:-1]) if len(period) > 1 else 1
    return multiplier * _UNITS[period[-1]]


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
    """Count this request against every limit of `route`; raise RateLimited on the first hit."""
    values = {
        "ip": client_ip(request),
        "site": f"site:{site_id}" if site_id is not None else None,
        "session": f"session:{session_id}" if session_id is not None else None,
    }
    for scope, rate in settings.WEBCHAT_RATE_LIMITS[route].items():
        value = values.get(scope)
        if value is None:
            continue
        limited = is_ratelimited(
            request,
            group=f"webchat:{route}:{scope}",
            key=lambda _group, _request, value=value: value,
            rate=rate,
            increment=True,
        )
        if limited:
            metrics.RATE_LIMITED.labels(route, scope).inc()
            raise RateLimited(
                f"Too many requests ({scope} limit {rate}). Try again later.",
                retry_after=period_seconds(rate),
            )
