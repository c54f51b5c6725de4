"""Reads of the rollout state, and the one function that decides whether a site may serve.

`webchat_allowed(site)` is on every public widget request. Its decision is cached for
`ROLLOUT_DECISION_TTL` seconds under a cache *generation*: every write through
`rollout.services` bumps the generation, so every cached decision on every web instance
goes stale at once; a change made any other way (a raw SQL update, say) is seen within the
TTL. A warm decision costs one cache round trip and no database query.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Protocol

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact

from rollout.models import (
    MODE_ORDER,
    STAGE_ORDER,
    AuditEntry,
    GateEvaluation,
    Mode,
    Override,
    RolloutPolicy,
    ScheduledChange,
    ScheduleStatus,
    Stage,
    TenantRollout,
)
from tenants.models import Tenant
from webchat.models import WebChatSite

GENERATION_KEY = "rollout:generation"
DECISION_CACHE_PREFIX = "rollout:decision:v2:"
POLICY_CACHE_KEY = "rollout:policy:v2"


class SiteLike(Protocol):
    id: int
    tenant_id: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class PolicySnapshot:
    mode: str
    webchat_enabled: bool
    allowed_tiers: tuple[str, ...]
    saved: bool = True  # False: no policy row yet, the defaults from settings apply

    @classmethod
    def default(cls) -> PolicySnapshot:
        return cls(
            mode=settings.ROLLOUT_DEFAULT_MODE,
            webchat_enabled=True,
            allowed_tiers=(),
            saved=False,
        )

    @classmethod
    def of(cls, policy: RolloutPolicy) -> PolicySnapshot:
        return cls(policy.mode, policy.webchat_enabled, tuple(policy.allowed_tiers or ()))

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "webchat_enabled": self.webchat_enabled,
            "allowed_tiers": sorted(self.allowed_tiers),
        }


@dataclass(frozen=True)
class TenantState:
    tenant_id: int
    plan_tier: str
    override: str = Override.NONE
    in_pilot: bool = False
    canary_only: bool = False

    @classmethod
    def of(cls, tenant: Tenant, rollout: TenantRollout | None) -> TenantState:
        if rollout is None:
            return cls(tenant.pk, tenant.plan_tier)
        return cls(
            tenant.pk, tenant.plan_tier, rollout.override, rollout.in_pilot, rollout.canary_only
        )

    def as_dict(self) -> dict:
        return {
            "override": self.override,
            "in_pilot": self.in_pilot,
            "canary_only": self.canary_only,
        }


# --- the decision ladder (pure) -----------------------------------------------------------


def _pilot_rule(state: TenantState, site_is_canary: bool, allowed_reason: str) -> Decision:
    if state.canary_only and not site_is_canary:
        return Decision(False, "site_not_canary")
    return Decision(True, allowed_reason)


def decide(policy: PolicySnapshot, state: TenantState | None, site_is_canary: bool) -> Decision:
    """Kill switch → tenant forced off → tenant forced on → mode off → held at pilot →
    pilot (pilot list; canary-only pilots serve canary sites only) → tiered (allowed tiers,
    plus the pilot) → ga."""
    if not policy.webchat_enabled:
        return Decision(False, "kill_switch")
    if state is None:
        return Decision(False, "tenant_missing")
    if state.override == Override.FORCE_OFF:
        return Decision(False, "tenant_forced_off")
    if state.override == Override.FORCE_ON:
        return Decision(True, "tenant_forced_on")
    if policy.mode == Mode.OFF:
        return Decision(False, "mode_off")
    if state.override == Override.HOLD_PILOT:
        return _pilot_rule(state, site_is_canary, "pilot_hold")
    if policy.mode == Mode.PILOT:
        if not state.in_pilot:
            return Decision(False, "not_in_pilot")
        return _pilot_rule(state, site_is_canary, "pilot")
    if policy.mode == Mode.TIERED:
        if state.plan_tier in policy.allowed_tiers:
            return Decision(True, "tier_enabled")
        if state.in_pilot:
            return _pilot_rule(state, site_is_canary, "pilot")
        return Decision(False, "tier_not_enabled")
    return Decision(True, "ga")


def site_allowed_filter(policy: PolicySnapshot) -> Q:
    """`decide(policy, state, site.is_canary).allowed` as a filter on `WebChatSite`, for a
    screen that counts or orders sites by it in the database. The same ladder as `decide`
    (a test holds the two to each other for every state). A tenant without a rollout row
    has the default state: each term is NULL-free, so the filter negates as it should."""
    if not policy.webchat_enabled:
        return Q(pk__in=[])

    def rollout(field: str, default) -> Coalesce:
        return Coalesce(F(f"tenant__rollout__{field}"), Value(default))

    override = rollout("override", Override.NONE)
    forced_on = Q(Exact(override, Override.FORCE_ON))
    if policy.mode == Mode.OFF:
        return forced_on
    forced_off = Q(Exact(override, Override.FORCE_OFF))
    held = Q(Exact(override, Override.HOLD_PILOT))
    pilot_rule = Q(Exact(rollout("canary_only", False), False)) | Q(is_canary=True)
    pilot = Q(Exact(rollout("in_pilot", False), True)) & pilot_rule
    if policy.mode == Mode.PILOT:
        follows = pilot
    elif policy.mode == Mode.TIERED:
        follows = Q(tenant__plan_tier__in=list(policy.allowed_tiers)) | pilot
    else:
        follows = Q(pk__isnull=False)
    return forced_on | (held & pilot_rule) | (~forced_off & ~forced_on & ~held & follows)


def tenant_stage(policy: PolicySnapshot, state: TenantState) -> Stage:
    """The tenant's exposure under the policy, ignoring the global kill switch."""
    live = PolicySnapshot(policy.mode, True, policy.allowed_tiers, policy.saved)
    other = decide(live, state, site_is_canary=False)
    if other.allowed:
        return Stage.PILOT if other.reason in ("pilot", "pilot_hold") else Stage.FULL
    return Stage.CANARY if decide(live, state, site_is_canary=True).allowed else Stage.OFF


def stage_rank(stage: str) -> int:
    return STAGE_ORDER.index(stage)


def mode_rank(mode: str) -> int:
    return MODE_ORDER.index(mode)


# --- cached reads for the hot path ---------------------------------------------------------


def generation_get() -> str:
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        cache.add(GENERATION_KEY, uuid.uuid4().hex[:16], timeout=None)
        generation = cache.get(GENERATION_KEY)
    return generation


def generation_bump() -> None:
    """Make every cached decision and the cached policy stale, on every instance."""
    cache.set(GENERATION_KEY, uuid.uuid4().hex[:16], timeout=None)


def policy_read() -> PolicySnapshot:
    """The policy from the database (the defaults when no row has been saved)."""
    policy = RolloutPolicy.objects.filter(pk=1).first()
    return PolicySnapshot.of(policy) if policy else PolicySnapshot.default()


def policy_get(*, generation: str | None = None) -> PolicySnapshot:
    """The policy through the cache (bounded by the TTL and the generation)."""
    generation = generation or generation_get()
    cached = cache.get(POLICY_CACHE_KEY)
    if cached is not None and cached[0] == generation:
        data = cached[1]
        return PolicySnapshot(
            data["mode"], data["webchat_enabled"], tuple(data["allowed_tiers"]), data["saved"]
        )
    policy = policy_read()
    cache.set(POLICY_CACHE_KEY, (generation, {**asdict(policy)}), settings.ROLLOUT_DECISION_TTL)
    return policy


def _state_for_site(site: SiteLike) -> tuple[TenantState | None, bool]:
    """The tenant's rollout state and the site's canary flag, in one query."""
    row = (
        Tenant.objects.filter(pk=site.tenant_id)
        .values("plan_tier", "rollout__override", "rollout__in_pilot", "rollout__canary_only")
        .annotate(
            site_canary=Subquery(
                WebChatSite.objects.filter(pk=site.id, tenant_id=OuterRef("pk")).values(
                    "is_canary"
                )[:1]
            )
        )
        .first()
    )
    if row is None:
        return None, False
    state = TenantState(
        tenant_id=site.tenant_id,
        plan_tier=row["plan_tier"],
        override=row["rollout__override"] or Override.NONE,
        in_pilot=bool(row["rollout__in_pilot"]),
        canary_only=bool(row["rollout__canary_only"]),
    )
    return state, bool(row["site_canary"])


def decision_cache_keys(*, tenant_id: int, site_id: int) -> list[str]:
    """The cache keys `webchat_allowed` reads for a site (so a caller can read them along
    with its own, in one round trip, and pass what it found as `cached`)."""
    return [GENERATION_KEY, f"{DECISION_CACHE_PREFIX}{tenant_id}:{site_id}"]


def webchat_allowed(site: SiteLike, *, cached: dict | None = None) -> Decision:
    """May this site serve webchat right now? Cached; see the module docstring. `cached`:
    what the cache held under `decision_cache_keys(site)`, read by the caller."""
    keys = decision_cache_keys(tenant_id=site.tenant_id, site_id=site.id)
    key = keys[1]
    found = cached if cached is not None else cache.get_many(keys)
    generation = found.get(GENERATION_KEY) or generation_get()
    entry = found.get(key)
    if entry is not None and entry[0] == generation:
        return Decision(entry[1], entry[2])
    state, site_is_canary = _state_for_site(site)
    decision = decide(policy_get(generation=generation), state, site_is_canary)
    cache.set(key, (generation, decision.allowed, decision.reason), settings.ROLLOUT_DECISION_TTL)
    return decision


# --- reads for services and screens ---------------------------------------------------------


def tenant_list(*, query: str = "") -> QuerySet[Tenant]:
    """Every tenant, or those whose name or slug contains `query` (any case), by name."""
    tenants = Tenant.objects.order_by("name", "pk")
    if query:
        tenants = tenants.filter(Q(name__icontains=query) | Q(slug__icontains=query))
    return tenants


def tenant_state_get(*, tenant: Tenant) -> TenantState:
    rollout = TenantRollout.objects.filter(tenant=tenant).first()
    return TenantState.of(tenant, rollout)


@dataclass(frozen=True)
class TenantRow:
    """One tenant on the rollout screen."""

    tenant: Tenant
    state: TenantState
    stage: Stage
    decision: Decision  # for its ordinary (non-canary) sites
    canary_decision: Decision  # for its canary sites
    sites: int
    canary_sites: int
    gate: GateEvaluation | None
    gate_since: object

    @property
    def summary(self) -> str:
        if self.decision.allowed:
            return "allowed"
        if self.canary_decision.allowed:
            return "canary sites only"
        return "denied"

    @property
    def promotable(self) -> bool:
        return (
            self.gate is not None
            and self.gate.status == "pass"
            and self.stage in (Stage.CANARY, Stage.PILOT)
        )

    @property
    def demotable(self) -> bool:
        return self.stage != Stage.OFF


def gate_latest_by_tenant(*, tenant_ids: list[int] | None = None) -> dict[int, GateEvaluation]:
    """The newest gate evaluation of each tenant (two queries in all: an index probe per
    tenant on (tenant, -id), not a GROUP BY over the whole evaluation history)."""
    tenants = (
        Tenant.objects.all() if tenant_ids is None else Tenant.objects.filter(pk__in=tenant_ids)
    )
    newest = GateEvaluation.objects.filter(tenant_id=OuterRef("pk")).order_by("-id")
    ids = [
        last
        for last in tenants.annotate(last=Subquery(newest.values("id")[:1]))
        .order_by()
        .values_list("last", flat=True)
        if last is not None
    ]
    return {g.tenant_id: g for g in GateEvaluation.objects.filter(id__in=ids)}


def tenant_rows(
    *, policy: PolicySnapshot, tenants: QuerySet[Tenant] | None = None
) -> list[TenantRow]:
    """Every tenant (or the given ones) with state, decision, sites and last gate result."""
    tenants = (tenants if tenants is not None else Tenant.objects.all()).select_related("rollout")
    tenant_list = list(tenants.order_by("name"))
    ids = [t.pk for t in tenant_list]
    sites = {
        row["tenant_id"]: row
        for row in WebChatSite.objects.filter(tenant_id__in=ids, active=True)
        .values("tenant_id")
        .annotate(n=Count("id"), canary=Count("id", filter=Q(is_canary=True)))
    }
    gates = gate_latest_by_tenant(tenant_ids=ids)
    rows = []
    for tenant in tenant_list:
        rollout = getattr(tenant, "rollout", None)
        state = TenantState.of(tenant, rollout)
        counts = sites.get(tenant.pk, {"n": 0, "canary": 0})
        rows.append(
            TenantRow(
                tenant=tenant,
                state=state,
                stage=tenant_stage(policy, state),
                decision=decide(policy, state, False),
                canary_decision=decide(policy, state, True),
                sites=counts["n"],
                canary_sites=counts["canary"],
                gate=gates.get(tenant.pk),
                gate_since=rollout.gate_since if rollout else None,
            )
        )
    return rows


def scheduled_change_list_pending(*, tenant: Tenant | None = None) -> QuerySet[ScheduledChange]:
    """Pending changes (of `tenant` only, if given)."""
    changes = ScheduledChange.objects.filter(status=ScheduleStatus.PENDING)
    if tenant is not None:
        changes = changes.filter(tenant=tenant)
    return changes.select_related("tenant", "created_by")


@dataclass(frozen=True)
class RolloutSummary:
    """How many tenants are in the pilot and have an override, with the first few of each
    (by name)."""

    pilot_count: int
    pilot: list[TenantRollout]
    override_count: int
    overrides: list[TenantRollout]


def tenant_rollout_summary(*, shown: int = 4) -> RolloutSummary:
    counts = TenantRollout.objects.aggregate(
        pilot=Count("pk", filter=Q(in_pilot=True)),
        overrides=Count("pk", filter=~Q(override=Override.NONE)),
    )
    rows = TenantRollout.objects.select_related("tenant").order_by("tenant__name", "pk")
    return RolloutSummary(
        pilot_count=counts["pilot"],
        pilot=list(rows.filter(in_pilot=True)[:shown]),
        override_count=counts["overrides"],
        overrides=list(rows.exclude(override=Override.NONE)[:shown]),
    )


def scheduled_change_list_recent(*, limit: int = 10) -> list[ScheduledChange]:
    return list(
        ScheduledChange.objects.exclude(status=ScheduleStatus.PENDING)
        .select_related("tenant")
        .order_by("-updated_at")[:limit]
    )


def audit_list(*, tenant: Tenant | None = None, limit: int = 50) -> list[AuditEntry]:
    entries = AuditEntry.objects.select_related("tenant", "site", "actor")
    if tenant is not None:
        entries = entries.filter(tenant=tenant)
    return list(entries[:limit])
