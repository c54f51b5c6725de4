"""Rollout decisions on all five public routes, through the real API."""

import time

import pytest

from rollout import services
from rollout.models import Mode, RolloutPolicy
from tests.conftest import clear_own_cache_keys
from tests.factories import TenantFactory
from tests.factories.rollout import RolloutPolicyFactory, TenantRolloutFactory
from tests.factories.webchat import WebChatSiteFactory
from tests.widget_client import WidgetClient

pytestmark = pytest.mark.django_db

REASON = "incident 42: widget errors"


def code_of(response) -> tuple[int, str | None]:
    body = response.json()
    return response.status_code, (body.get("error") or {}).get("code")


def every_route(widget: WidgetClient, challenge: str) -> dict[str, object]:
    """One request to each route (and events both ways) with a live session."""
    return {
        "config": widget.config(),
        "init": widget.post(
            "init", {"site_key": widget.site_key, "challenge": challenge}, auth=False
        ),
        "messages_post": widget.send("hello"),
        "messages_get": widget.poll(),
        "events": widget.events([{"type": "widget_loaded"}]),
        "events_site_key": widget.events(
            [{"type": "widget_loaded"}], with_site_key=True, auth=False
        ),
    }


def statuses(responses: dict) -> dict[str, int]:
    return {route: response.status_code for route, response in responses.items()}


ALL_OK = {
    "config": 200,
    "init": 200,
    "messages_post": 201,
    "messages_get": 200,
    "events": 202,
    "events_site_key": 202,
}


def denied(responses: dict) -> dict[str, tuple]:
    return {route: code_of(response) for route, response in responses.items()}


ALL_DENIED = dict.fromkeys(ALL_OK, (403, "webchat_disabled"))


def fresh_challenge(widget: WidgetClient) -> str:
    response = widget.config()
    assert response.status_code == 200, response.content
    return response.json()["challenge"]


@pytest.fixture
def live(widget_client):
    """A visitor with a session, and a spare challenge for the init route."""
    assert widget_client.init().status_code == 200
    return widget_client


def test_all_routes_serve_while_allowed(live):
    assert statuses(every_route(live, fresh_challenge(live))) == ALL_OK


def test_kill_switch_stops_every_route_at_once(live, operator):
    challenge = fresh_challenge(live)
    live.send("warm every cached decision")
    services.kill_switch_set(actor=operator, reason=REASON, enabled=False)
    assert denied(every_route(live, challenge)) == ALL_DENIED
    services.kill_switch_set(actor=operator, reason="fixed", enabled=True)
    assert statuses(every_route(live, fresh_challenge(live))) == ALL_OK


def test_tenant_forced_off_stops_its_existing_sessions_only(live, tenant, client, operator):
    other_site = WebChatSiteFactory(tenant=TenantFactory())
    other = WidgetClient(client, other_site.site_key)
    assert other.init().status_code == 200
    challenge = fresh_challenge(live)
    services.tenant_override_set(tenant=tenant, actor=operator, reason=REASON, override="off")
    assert denied(every_route(live, challenge)) == ALL_DENIED
    assert statuses(every_route(other, fresh_challenge(other))) == ALL_OK


def test_mode_change_reaches_every_route(live, operator):
    challenge = fresh_challenge(live)
    services.policy_update(actor=operator, reason="pause the rollout", mode=Mode.OFF)
    assert denied(every_route(live, challenge)) == ALL_DENIED


def test_a_change_outside_the_services_is_seen_within_the_ttl(live, settings):
    """No generation bump (a raw SQL update): cached decisions hold at most the TTL."""
    settings.ROLLOUT_DECISION_TTL = 1
    RolloutPolicyFactory(mode=Mode.GA)
    challenge = fresh_challenge(live)
    assert statuses(every_route(live, fresh_challenge(live))) == ALL_OK
    clear_own_cache_keys()
    assert live.config().status_code == 200  # a decision cached for 1 s from now
    started = time.monotonic()
    RolloutPolicy.objects.filter(pk=1).update(webchat_enabled=False)
    assert live.config().status_code == 200  # still the cached decision
    time.sleep(max(0.0, 1.2 - (time.monotonic() - started)))
    assert denied(every_route(live, challenge)) == ALL_DENIED


def test_canary_only_pilot_serves_canary_sites_only(client, tenant, operator):
    RolloutPolicyFactory(mode=Mode.PILOT)
    TenantRolloutFactory(tenant=tenant, in_pilot=True, canary_only=True)
    canary = WebChatSiteFactory(tenant=tenant, name="Blog", is_canary=True)
    shop = WebChatSiteFactory(tenant=tenant, name="Shop")
    assert WidgetClient(client, canary.site_key).init().status_code == 200
    assert code_of(WidgetClient(client, shop.site_key).config()) == (403, "webchat_disabled")
    # Promotion is gated by the SLO gates; here the operator widens by hand.
    services.tenant_rollout_update(
        tenant=tenant, actor=operator, reason="canary looked good", canary_only=False
    )
    assert WidgetClient(client, shop.site_key).init().status_code == 200


def test_warm_config_stays_free_of_queries_with_a_saved_policy(
    widget_client, tenant, django_assert_max_num_queries
):
    RolloutPolicyFactory(mode=Mode.PILOT)
    TenantRolloutFactory(tenant=tenant, in_pilot=True)
    assert widget_client.config().status_code == 200
    with django_assert_max_num_queries(0):
        assert widget_client.config().status_code == 200


def test_refusals_are_counted_by_reason(widget_client, operator):
    from webchat import metrics

    before = metrics.DISABLED.labels("kill_switch")._value.get()
    services.kill_switch_set(actor=operator, reason=REASON, enabled=False)
    widget_client.config()
    assert metrics.DISABLED.labels("kill_switch")._value.get() == before + 1
