"""webchat.ratelimits: django-ratelimit's counters, bumped for all of a route's limits at once."""

import pytest
from django.test import RequestFactory
from django_ratelimit.core import get_usage

from core.exceptions import RateLimited
from webchat import ratelimits

LIMITS = {"messages_post": {"ip": "5/m", "site": "100/m", "session": "3/m"}}


@pytest.fixture
def request_from_ip():
    return RequestFactory().post("/api/webchat/v1/messages", REMOTE_ADDR="203.0.113.7")


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.WEBCHAT_RATE_LIMITS = LIMITS


def _usage(request, scope: str, value: str) -> dict:
    """What django-ratelimit itself reads for this counter (without counting)."""
    return get_usage(
        request,
        group=f"webchat:messages_post:{scope}",
        key=lambda _group, _request: value,
        rate=LIMITS["messages_post"][scope],
        increment=False,
    )


def test_counts_are_django_ratelimits_own(request_from_ip):
    for _ in range(2):
        ratelimits.enforce(request_from_ip, route="messages_post", site_id=7, session_id=9)
    assert _usage(request_from_ip, "ip", "site:7:203.0.113.7")["count"] == 2
    assert _usage(request_from_ip, "site", "site:7")["count"] == 2
    assert _usage(request_from_ip, "session", "session:9")["count"] == 2


def test_the_first_limit_exceeded_refuses_with_the_time_left_in_its_window(request_from_ip):
    for _ in range(3):
        ratelimits.enforce(request_from_ip, route="messages_post", site_id=7, session_id=9)
    with pytest.raises(RateLimited) as refused:
        ratelimits.enforce(request_from_ip, route="messages_post", site_id=7, session_id=9)
    assert "session limit 3/m" in refused.value.message
    assert 1 <= refused.value.retry_after <= 60
    window_end = _usage(request_from_ip, "session", "session:9")["time_left"]
    assert abs(refused.value.retry_after - window_end) <= 1
    # another session of the same visitor address is counted on its own
    ratelimits.enforce(request_from_ip, route="messages_post", site_id=7, session_id=10)


def test_limits_off(settings, request_from_ip):
    settings.RATELIMIT_ENABLE = False
    for _ in range(10):
        ratelimits.enforce(request_from_ip, route="messages_post", site_id=7, session_id=9)


def test_an_address_over_its_limit_does_not_use_up_its_sites(settings):
    settings.WEBCHAT_RATE_LIMITS = {"config": {"ip": "5/m", "site": "10/m"}}
    flooder = RequestFactory().get("/", REMOTE_ADDR="198.51.100.1")
    refused = 0
    for _ in range(30):
        try:
            ratelimits.enforce(flooder, route="config", site_id=7)
        except RateLimited:
            refused += 1
    assert refused == 25
    visitor = RequestFactory().get("/", REMOTE_ADDR="198.51.100.2")
    ratelimits.enforce(visitor, route="config", site_id=7)  # the site has 5 of 10 used


def _from(remote: str, forwarded: str | None = None):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **headers)


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "198.51.100.9", "10.0.0.2"),  # no proxy trusted: the header is the client's own
        (1, "198.51.100.9", "198.51.100.9"),
        # the client wrote "1.2.3.4"; the proxy appended the address it saw
        (1, "1.2.3.4, 198.51.100.9", "198.51.100.9"),
        (2, "1.2.3.4, 198.51.100.9, 10.0.0.7", "198.51.100.9"),  # a CDN, then a balancer
        (2, "198.51.100.9", "10.0.0.2"),  # fewer hops than proxies: not through them
        (1, "", "10.0.0.2"),
    ],
)
def test_the_client_ip_is_the_entry_the_trusted_proxies_appended(
    settings, proxies, forwarded, expected
):
    settings.WEBCHAT_TRUSTED_PROXIES = proxies
    assert ratelimits.client_ip(_from("10.0.0.2", forwarded)) == expected


def test_a_forged_forwarded_for_does_not_escape_the_ip_limit(settings):
    settings.WEBCHAT_TRUSTED_PROXIES = 1
    settings.WEBCHAT_RATE_LIMITS = {"config": {"ip": "5/m", "site": "1000/m"}}
    refused = 0
    for n in range(10):
        forged = _from("10.0.0.2", f"203.0.113.{n}, 198.51.100.9")
        try:
            ratelimits.enforce(forged, route="config", site_id=7)
        except RateLimited:
            refused += 1
    assert refused == 5


@pytest.mark.parametrize(
    ("ip", "bucket"),
    [
        ("198.51.100.9", "198.51.100.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.9", "198.51.100.9"),
        ("not an address", "not an address"),
    ],
)
def test_ipv6_is_counted_per_slash_64(ip, bucket):
    assert ratelimits.ip_bucket(ip) == bucket


def test_one_addresss_visitors_of_one_site_do_not_use_up_anothers(settings):
    settings.WEBCHAT_RATE_LIMITS = {"config": {"ip": "3/m", "site": "1000/m"}}
    office = _from("198.51.100.50")
    for _ in range(3):
        ratelimits.enforce(office, route="config", site_id=7)
    with pytest.raises(RateLimited):
        ratelimits.enforce(office, route="config", site_id=7)
    ratelimits.enforce(office, route="config", site_id=8)  # another tenant's site


def test_one_address_across_many_sites_meets_its_all_sites_limit(settings):
    """The per-IP limit is per site (a NAT's visitors of one site never use up another's);
    the `address` limit bounds what one address gets across every site together."""
    settings.WEBCHAT_RATE_LIMITS = {"init": {"ip": "3/m", "address": "10/m", "site": "1000/m"}}
    crawler = _from("198.51.100.60")
    refused_by = []
    for site_id in range(1, 13):  # 12 sites, once each: never over any one site's 3/m
        try:
            ratelimits.enforce(crawler, route="init", site_id=site_id)
        except RateLimited as exc:
            refused_by.append((site_id, exc.message))
    assert [site_id for site_id, _ in refused_by] == [11, 12]
    assert all("address limit 10/m" in message for _, message in refused_by)
    ratelimits.enforce(_from("198.51.100.61"), route="init", site_id=11)  # another address


def test_every_visitor_route_has_an_all_sites_address_limit_above_its_per_site_one():
    from django_ratelimit.core import _split_rate

    def per_minute(rate: str) -> float:
        count, seconds = _split_rate(rate)
        return count * 60 / seconds

    import importlib
    import os

    configured = importlib.import_module(os.environ["DJANGO_SETTINGS_MODULE"])  # not the fixture's
    for route in ("config", "init", "messages_post", "messages_get", "events"):
        scopes = configured.WEBCHAT_RATE_LIMITS[route]
        assert per_minute(scopes["address"]) > per_minute(scopes["ip"]), route
