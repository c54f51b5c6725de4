import pytest

from webchat.origins import InvalidRule, origin_allowed, origin_of_url, parse_rule, validate_rules

RULES = ["shop.example.com", "*.example.org", "https://secure.example.net:8443", "localhost"]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://shop.example.com", True),
        ("http://shop.example.com:8080", True),
        ("https://SHOP.Example.com", True),
        ("https://evil-shop.example.com", False),
        ("https://shop.example.com.evil.net", False),
        ("https://example.com", False),
        ("https://a.example.org", True),
        ("https://deep.a.example.org", True),
        ("https://example.org", False),  # the wildcard does not cover the apex
        ("https://badexample.org", False),
        ("https://secure.example.net:8443", True),
        ("https://secure.example.net", False),  # port 443 is not 8443
        ("http://secure.example.net:8443", False),  # scheme pinned to https
        ("http://localhost:5173", True),
        ("http://127.0.0.1:5173", False),
        ("ftp://shop.example.com", False),
        ("null", False),
        ("", False),
        (None, False),
        ("https://", False),
        ("not a url", False),
        ("https://shop.example.com:99999", False),
    ],
)
def test_origin_matching(origin, allowed):
    assert origin_allowed(origin, RULES, allow_any=False) is allowed


def test_bare_star_only_when_allowed():
    assert origin_allowed("https://anything.test", ["*"], allow_any=True) is True
    assert origin_allowed("https://anything.test", ["*"], allow_any=False) is False
    with pytest.raises(InvalidRule, match="bare"):
        validate_rules(["shop.example.com", "*"], allow_any=False)
    assert validate_rules(["*"], allow_any=True) == ["*"]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "https://shop.example.com/path",
        "*.com",
        "shop.*.example.com",
        "ftp://example.com",
        "example.com:0",
        "example.com:abc",
        "example.com:\u00b2",  # a digit to str.isdigit(), not to int()
        "[::1]:\u0663",
        "exa mple.com",
        "user@example.com",
    ],
)
def test_invalid_rules_are_refused_with_a_reason(bad):
    with pytest.raises(InvalidRule) as caught:
        validate_rules([bad], allow_any=False)
    assert str(caught.value)


def test_rules_are_normalized_and_deduplicated():
    assert validate_rules(
        [" Shop.Example.com ", "shop.example.com", "localhost:*"], allow_any=False
    ) == [
        "shop.example.com",
        "localhost:*",
    ]
    assert parse_rule("localhost:*").port is None


def test_stored_garbage_rule_never_allows():
    assert (
        origin_allowed("https://shop.example.com", ["https://shop.example.com/x"], allow_any=True)
        is False
    )


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://shop.example.com/cart?x=1", "https://shop.example.com"),
        ("http://localhost:8000/demo/", "http://localhost:8000"),
        ("javascript:alert(1)", None),
        ("", None),
        ("https://[::1", None),
    ],
)
def test_origin_of_referer(url, origin):
    assert origin_of_url(url) == origin


# --- the CORS index: every site's rules at once --------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "https://shop.example.com",
        "http://shop.example.com:8080",
        "https://a.b.example.net",
        "https://example.net",
        "https://evil-example.com",
        "https://shop.example.com.evil.net",
        "http://localhost:3000",
        "https://localhost",
        "https://secure.example.org:8443",
        "https://secure.example.org",
        "http://secure.example.org:8443",
        "ftp://shop.example.com",
        "null",
        "",
    ],
)
def test_the_index_answers_as_the_sites_rules_do(origin):
    from webchat.origins import OriginIndex

    sites = [
        ["shop.example.com", "*.example.net"],
        ["localhost:*"],
        ["https://secure.example.org:8443", 5, "", "bad rule!"],
        "not a list",
    ]
    index = OriginIndex.of(sites)
    expected = any(origin_allowed(origin, rules, allow_any=False) for rules in sites)
    assert index.allows(origin, allow_any=False) is expected


def test_any_origin_only_when_allowed():
    from webchat.origins import OriginIndex

    index = OriginIndex.of([["*"]])
    assert index.allows("https://anything.test", allow_any=True)
    assert not index.allows("https://anything.test", allow_any=False)


@pytest.mark.django_db
def test_preflights_from_made_up_origins_cost_no_query(client, site, django_assert_max_num_queries):
    """One query builds the index; origins nobody allows then cost none, and an edit to a
    site's domains is seen at once."""
    preflight = {
        "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST",
        "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "content-type",
    }
    client.options("/api/webchat/v1/init", HTTP_ORIGIN="https://warm.test", **preflight)
    with django_assert_max_num_queries(0):
        for n in range(200):
            response = client.options(
                "/api/webchat/v1/init", HTTP_ORIGIN=f"https://x{n}.evil.test", **preflight
            )
            assert "access-control-allow-origin" not in response.headers
    allowed = client.options(
        "/api/webchat/v1/init", HTTP_ORIGIN="https://shop.example.com", **preflight
    )
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example.com"
    site.allowed_domains = ["new.example.com"]
    site.save()
    moved = client.options(
        "/api/webchat/v1/init", HTTP_ORIGIN="https://new.example.com", **preflight
    )
    assert moved.headers["access-control-allow-origin"] == "https://new.example.com"
    gone = client.options(
        "/api/webchat/v1/init", HTTP_ORIGIN="https://shop.example.com", **preflight
    )
    assert "access-control-allow-origin" not in gone.headers
