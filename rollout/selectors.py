"""The one place that decides whether a site may serve webchat traffic right now.

This first version reads the tenant's own `webchat_enabled` flag; the rollout policy
(modes, pilot list, tiers, overrides, kill switch) replaces its body later. Decisions are
cached for ROLLOUT_DECISION_TTL seconds, so a change takes effect within that time on
every web instance.
"""

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.core.cache import cache

from tenants.models import Tenant

DECISION_CACHE_PREFIX = "rollout:decision:v1:"


class SiteLike(Protocol):
    id: int
    tenant_id: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def _decide(site: SiteLike) -> Decision:
    enabled = (
        Tenant.objects.filter(pk=site.tenant_id).values_list("webchat_enabled", flat=True).first()
    )
    if enabled is None:
        return Decision(False, "tenant_missing")
    if not enabled:
        return Decision(False, "tenant_forced_off")
    return Decision(True, "tenant_enabled")


def webchat_allowed(site: SiteLike) -> Decision:
    key = f"{DECISION_CACHE_PREFIX}{site.tenant_id}:{site.id}"
    cached = cache.get(key)
    if cached is not None:
        return Decision(*cached)
    decision = _decide(site)
    cache.set(key, (decision.allowed, decision.reason), settings.ROLLOUT_DECISION_TTL)
    return decision
