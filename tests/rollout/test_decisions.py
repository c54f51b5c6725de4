"""The decision ladder as a table, then the cached decision against the database."""

import itertools

import pytest

from rollout.models import Mode, Override, Stage, TenantRollout
from rollout.selectors import (
    Decision,
    PolicySnapshot,
    TenantState,
    decide,
    generation_bump,
    site_allowed_filter,
    tenant_stage,
    webchat_allowed,
)
from tenants.models import PlanTier
from tests.factories import TenantFactory
from tests.factories.rollout import RolloutPolicyFactory, TenantRolloutFactory
from tests.factories.webchat import WebChatSiteFactory
from webchat.models import WebChatSite

MODES = [Mode.OFF, Mode.PILOT, Mode.TIERED, Mode.GA]
OVERRIDES = [Override.NONE, Override.FORCE_ON, Override.FORCE_OFF, Override.HOLD_PILOT]

ALLOW = True
DENY = False

# mode × tier enabled × override, for a tenant NOT in the pilot list, kill switch off.
# (allowed, reason)
TABLE_NOT_IN_PILOT = {
    # mode off: only a forced-on tenant serves
    (Mode.OFF, False, Override.NONE): (DENY, "mode_off"),
    (Mode.OFF, False, Override.FORCE_ON): (ALLOW, "tenant_forced_on"),
    (Mode.OFF, False, Override.FORCE_OFF): (DENY, "tenant_forced_off"),
    (Mode.OFF, False, Override.HOLD_PILOT): (DENY, "mode_off"),
    (Mode.OFF, True, Override.NONE): (DENY, "mode_off"),
    (Mode.OFF, True, Override.FORCE_ON): (ALLOW, "tenant_forced_on"),
    (Mode.OFF, True, Override.FORCE_OFF): (DENY, "tenant_forced_off"),
    (Mode.OFF, True, Override.HOLD_PILOT): (DENY, "mode_off"),
    # pilot: the pilot list decides (held tenants are treated as pilot tenants)
    (Mode.PILOT, False, Override.NONE): (DENY, "not_in_pilot"),
    (Mode.PILOT, False, Override.FORCE_ON): (ALLOW, "tenant_forced_on"),
    (Mode.PILOT, False, Override.FORCE_OFF): (DENY, "tenant_forced_off"),
    (Mode.PILOT, False, Override.HOLD_PILOT): (ALLOW, "pilot_hold"),
    (Mode.PILOT, True, Override.NONE): (DENY, "not_in_pilot"),
    (Mode.PILOT, True, Override.FORCE_ON): (ALLOW, "tenant_forced_on"),
    (Mode.PILOT, True, Override.FORCE_OFF): (DENY, "tenant_forced_off"),
    (Mode.PILOT, True, Override.HOLD_PILOT): (ALLOW, "pilot_hold"),
    # tiered: the tenant's plan tier decides
    (Mode.TIERED, False, Override.NONE): (DENY, "tier_not_enabled"),
    (Mode.TIERED, False, Override.FORCE_ON): (ALLOW, "tenant_forced_on"),
    (Mode.TIERED, False, Override.FORCE_OFF): (DENY, "tenant_forced_off"),
    (Mode.TIERED, False, Override.HOLD_PILOT): (ALLOW, "pilot_hold"),
    (Mode.TIERED, True, Override.NONE): (ALLOW, "tier_enabled"),
    (Mode.TIERED, True, Override.FORCE_ON): (ALLOW, "tenant_forced_on"),
    (Mode.TIERED, True, Override.FORCE_OFF): (DENY, "tenant_forced_off"),
    (Mode.TIERED, True, Override.HOLD_PILOT): (ALLOW, "pilot_hold"),
    # ga: everyone not forced off
    (Mode.GA, False, Override.NONE): (ALLOW, "ga"),
    (Mode.GA, False, Override.FORCE_ON): (ALLOW, "tenant_forced_on"),
    (Mode.GA, False, Override.FORCE_OFF): (DENY, "tenant_forced_off"),
    (Mode.GA, False, Override.HOLD_PILOT): (ALLOW, "pilot_hold"),
    (Mode.GA, True, Override.NONE): (ALLOW, "ga"),
    (Mode.GA, True, Override.FORCE_ON): (ALLOW, "tenant_forced_on"),
    (Mode.GA, True, Override.FORCE_OFF): (DENY, "tenant_forced_off"),
    (Mode.GA, True, Override.HOLD_PILOT): (ALLOW, "pilot_hold"),
}


def _policy(mode, tier_enabled: bool, kill: bool) -> PolicySnapshot:
    return PolicySnapshot(
        mode=mode, webchat_enabled=not kill, allowed_tiers=("pro",) if tier_enabled else ()
    )


def _state(override=Override.NONE, in_pilot=False, canary_only=False) -> TenantState:
    return TenantState(1, "pro", override, in_pilot, canary_only)


@pytest.mark.parametrize(
    ("mode", "tier_enabled", "override", "kill"),
    list(itertools.product(MODES, [False, True], OVERRIDES, [False, True])),
)
def test_decision_table(mode, tier_enabled, override, kill):
    decision = decide(_policy(mode, tier_enabled, kill), _state(override), site_is_canary=False)
    if kill:
        assert decision == Decision(False, "kill_switch")
    else:
        assert decision == Decision(*TABLE_NOT_IN_PILOT[(mode, tier_enabled, override)])


# Pilot members: mode × tier × canary-only × site is canary (no override, no kill).
TABLE_PILOT_MEMBER = {
    (Mode.OFF, False, False, False): (DENY, "mode_off"),
    (Mode.PILOT, False, False, False): (ALLOW, "pilot"),
    (Mode.PILOT, False, True, False): (DENY, "site_not_canary"),
    (Mode.PILOT, False, True, True): (ALLOW, "pilot"),
    (Mode.TIERED, False, False, False): (ALLOW, "pilot"),
    (Mode.TIERED, False, True, False): (DENY, "site_not_canary"),
    (Mode.TIERED, False, True, True): (ALLOW, "pilot"),
    # an enabled tier serves every site, canary-only or not
    (Mode.TIERED, True, True, False): (ALLOW, "tier_enabled"),
    (Mode.GA, False, True, False): (ALLOW, "ga"),
}


@pytest.mark.parametrize(("key", "expected"), list(TABLE_PILOT_MEMBER.items()))
def test_pilot_members_and_canary_sites(key, expected):
    mode, tier_enabled, canary_only, site_is_canary = key
    state = _state(in_pilot=True, canary_only=canary_only)
    assert decide(_policy(mode, tier_enabled, False), state, site_is_canary) == Decision(*expected)


@pytest.mark.parametrize("mode", [Mode.PILOT, Mode.TIERED, Mode.GA])
def test_held_tenant_with_canary_only_serves_only_canary_sites(mode):
    state = _state(override=Override.HOLD_PILOT, in_pilot=True, canary_only=True)
    policy = _policy(mode, True, False)
    assert decide(policy, state, False) == Decision(False, "site_not_canary")
    assert decide(policy, state, True) == Decision(True, "pilot_hold")


def test_kill_switch_beats_everything_even_forced_on():
    for override in OVERRIDES:
        state = _state(override=override, in_pilot=True)
        assert decide(_policy(Mode.GA, True, True), state, True).reason == "kill_switch"


def test_missing_tenant_is_denied():
    assert decide(_policy(Mode.GA, True, False), None, False) == Decision(False, "tenant_missing")


@pytest.mark.parametrize(
    ("mode", "state", "stage"),
    [
        (Mode.PILOT, _state(), Stage.OFF),
        (Mode.PILOT, _state(in_pilot=True, canary_only=True), Stage.CANARY),
        (Mode.PILOT, _state(in_pilot=True), Stage.PILOT),
        (Mode.PILOT, _state(override=Override.FORCE_ON), Stage.FULL),
        (Mode.GA, _state(), Stage.FULL),
        (Mode.GA, _state(override=Override.HOLD_PILOT), Stage.PILOT),
        (Mode.GA, _state(override=Override.FORCE_OFF), Stage.OFF),
        (Mode.TIERED, _state(in_pilot=True), Stage.PILOT),
    ],
)
def test_tenant_stage(mode, state, stage):
    # The kill switch does not change a tenant's stage: the stage is where it returns to.
    assert tenant_stage(_policy(mode, False, kill=True), state) == stage


# --- against the database and the cache ------------------------------------------------------


@pytest.mark.django_db
class TestWebchatAllowed:
    def test_defaults_before_any_policy_is_saved(self, site, settings):
        assert settings.ROLLOUT_DEFAULT_MODE == "ga"
        assert webchat_allowed(site) == Decision(True, "ga")

    def test_reads_policy_tenant_and_site(self, tenant):
        RolloutPolicyFactory(mode=Mode.PILOT)
        TenantRolloutFactory(tenant=tenant, in_pilot=True, canary_only=True)
        canary = WebChatSiteFactory(tenant=tenant, is_canary=True)
        plain = WebChatSiteFactory(tenant=tenant)
        assert webchat_allowed(canary) == Decision(True, "pilot")
        assert webchat_allowed(plain) == Decision(False, "site_not_canary")
        other = WebChatSiteFactory(tenant=TenantFactory())
        assert webchat_allowed(other) == Decision(False, "not_in_pilot")

    def test_site_of_another_tenant_is_never_a_canary(self, tenant):
        """The canary flag is read with the tenant filter: a forged pair reads no flag."""
        RolloutPolicyFactory(mode=Mode.PILOT)
        TenantRolloutFactory(tenant=tenant, in_pilot=True, canary_only=True)
        foreign = WebChatSiteFactory(tenant=TenantFactory(), is_canary=True)

        class Forged:
            id = foreign.pk
            tenant_id = tenant.pk

        assert webchat_allowed(Forged()) == Decision(False, "site_not_canary")

    def test_warm_decision_costs_no_query(self, site, django_assert_num_queries):
        RolloutPolicyFactory(mode=Mode.GA)
        with django_assert_num_queries(2):  # policy + tenant/site state
            webchat_allowed(site)
        with django_assert_num_queries(0):
            assert webchat_allowed(site).allowed

    def test_generation_bump_stales_every_cached_decision(self, site, tenant):
        policy = RolloutPolicyFactory(mode=Mode.GA)
        assert webchat_allowed(site).allowed
        policy.webchat_enabled = False
        policy.save()
        assert webchat_allowed(site).allowed  # still cached
        generation_bump()
        assert webchat_allowed(site) == Decision(False, "kill_switch")


@pytest.mark.django_db
def test_the_ladder_as_a_site_filter_agrees_with_decide():
    """The monitoring screen ranks sites by readiness in the database, with the ladder as a
    filter: for every policy, tenant state (with and without a rollout row) and canary flag
    it allows exactly the sites `decide` allows, and its negation the others."""
    states = [None, *itertools.product(OVERRIDES, [False, True], [False, True])]
    expected_for = []
    for number, (tier, rollout) in enumerate(
        itertools.product([PlanTier.FREE, PlanTier.PRO], states)
    ):
        tenant = TenantFactory(plan_tier=tier, name=f"Ladder {number:02d}")
        row = None
        if rollout is not None:
            override, in_pilot, canary_only = rollout
            row = TenantRollout.objects.create(
                tenant=tenant, override=override, in_pilot=in_pilot, canary_only=canary_only
            )
        for canary in (False, True):
            site = WebChatSiteFactory(tenant=tenant, is_canary=canary)
            expected_for.append((site.pk, TenantState.of(tenant, row), canary))
    every = {pk for pk, _, _ in expected_for}
    policies = [
        PolicySnapshot(mode=mode, webchat_enabled=enabled, allowed_tiers=tiers)
        for mode, enabled, tiers in itertools.product(
            MODES, [True, False], [(), ("pro",), ("free", "pro")]
        )
    ]
    for policy in policies:
        allowed = {
            pk for pk, state, canary in expected_for if decide(policy, state, canary).allowed
        }
        sites = WebChatSite.objects.filter(pk__in=every)
        assert set(sites.filter(site_allowed_filter(policy)).values_list("pk", flat=True)) == (
            allowed
        ), policy
        assert set(sites.exclude(site_allowed_filter(policy)).values_list("pk", flat=True)) == (
            every - allowed
        ), policy
