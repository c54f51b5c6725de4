"""Fuzz the public widget API from its OpenAPI schema: no input may cause a 5xx.

schemathesis generates valid and invalid requests for every operation in `/api/schema/`
and sends them to the Django app in-process (WSGI). So that the fuzzer gets past the
first guards (unknown site, origin, token, challenge) and reaches the services, each
generated request is dressed as one caller: the real widget (allowed Origin, the site's
key, a fresh init challenge, a live session token) gets the most examples; the same
widget on another origin, a forged token, an Origin without a token and the raw
generated request get fewer.

Every answer must be below 500, every 4xx exactly {"error": {"code": str, "message": str}},
and every 2xx body must match the schema.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.widget_client import WidgetClient

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    # Fuzzed site keys become cache keys; Redis takes any bytes, only memcached would mind.
    pytest.mark.filterwarnings("ignore::django.core.cache.CacheKeyWarning"),
]

ORIGIN = "https://shop.example.com"
OTHER_ORIGIN = "https://evil.test"
CALLERS = ("widget", "widget_other_origin", "forged_token", "origin_only", "as_generated")
LENIENT_LIMIT = "100000/m"


@pytest.fixture
def lenient_rate_limits(settings):
    """The fuzzer sends hundreds of requests from one address: 429s would hide the rest."""
    settings.WEBCHAT_RATE_LIMITS = {
        route: dict.fromkeys(scopes, LENIENT_LIMIT)
        for route, scopes in settings.WEBCHAT_RATE_LIMITS.items()
    }


@pytest.fixture
def widget(widget_client: WidgetClient, lenient_rate_limits) -> WidgetClient:
    """A widget with a live session on the conftest site (which allows ORIGIN)."""
    response = widget_client.init()
    assert response.status_code == 200, response.content
    return widget_client


# Loaded at import (pytest-django has configured Django by then; the schema view reads no
# database). Not `schemathesis.pytest.from_fixture`: its lazy loader sets
# `node._nodeid`, which pytest 9 no longer has (schemathesis 4.32.5).
schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())


def _dress(case, caller: str, widget: WidgetClient) -> None:
    """Make the generated request look like `caller` sent it."""
    if caller == "as_generated":
        return
    token = {"forged_token": "forged.token-value"}.get(caller, widget.token)
    case.headers["Origin"] = OTHER_ORIGIN if caller == "widget_other_origin" else ORIGIN
    if caller != "origin_only":
        case.headers["Authorization"] = f"Bearer {token}"
    if caller != "widget":
        return
    # The real widget knows its site key and holds a fresh challenge for init.
    if isinstance(case.query, dict) and "site_key" in case.query:
        case.query["site_key"] = widget.site_key
    if isinstance(case.body, dict):
        if "site_key" in case.body:
            case.body["site_key"] = widget.site_key
        if case.path.endswith("/init") and "challenge" in case.body:
            case.body["challenge"] = widget.config().json()["challenge"]


def _assert_error_body(response, described: str) -> None:
    # schemathesis' Response: lower-cased header names, each with a list of values.
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), described
    try:
        body = json.loads(response.content)
    except ValueError:
        pytest.fail(f"not JSON: {described}")
    assert isinstance(body, dict), described
    assert set(body) == {"error"}, described
    error = body["error"]
    assert isinstance(error, dict), described
    assert set(error) == {"code", "message"}, described
    assert isinstance(error["code"], str), described
    assert error["code"], described
    assert isinstance(error["message"], str), described
    assert error["message"], described


def _check(case, caller: str, widget: WidgetClient) -> None:
    _dress(case, caller, widget)
    response = case.call()
    assert response.status_code < 500, _describe(response, case, caller)
    if 400 <= response.status_code < 500:
        _assert_error_body(response, _describe(response, case, caller))
    elif response.status_code < 300:
        # Success bodies must match the documented shapes (errors have none in the schema).
        case.validate_response(response, checks=[response_schema_conformance])


def _describe(response, case, caller: str) -> str:
    return (
        f"{response.status_code} {response.content[:300]!r} for {caller}: {case.as_curl_command()}"
    )


# Deep: the real widget's requests reach the services (init, messages, events).
@schema.parametrize()
@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_widget_requests_never_fail_the_server(case, widget):
    _check(case, "widget", widget)


# Shallow: callers the guards must turn away, each with a proper error.
@pytest.mark.parametrize("caller", [c for c in CALLERS if c != "widget"])
@schema.parametrize()
@hypothesis_settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_other_callers_get_clean_errors(case, caller, widget):
    _check(case, caller, widget)


# What the fuzzer found once, replayed on every run (Hypothesis explores randomly).
@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"user_id": "u", "user_hash": "\u00e9"}, id="non-ascii-user-hash"),
    ],
)
def test_fuzz_findings_stay_fixed(widget, fields):
    response = widget.init(**fields)
    assert response.status_code < 500
    assert set(response.json()) == {"error"}


# The dressing must get the real widget's requests past every guard, or the deep test
# above would only ever see clean 4xx: one valid request per operation, dressed the same way.
VALID = {
    ("GET", "/api/webchat/v1/config"): {"query": {"site_key": "placeholder"}},
    ("POST", "/api/webchat/v1/init"): {"body": {"site_key": "placeholder", "challenge": "x"}},
    ("POST", "/api/webchat/v1/messages"): {"body": {"text": "hi", "client_message_id": "c-1"}},
    ("GET", "/api/webchat/v1/messages"): {"query": {"after": 0}},
    ("POST", "/api/webchat/v1/events"): {"body": {"events": [{"type": "open", "data": {}}]}},
}


def test_the_dressed_widget_gets_past_the_guards_on_every_operation(widget):
    operations = {
        (op.method.upper(), op.path): op
        for op in (result.ok() for result in schema.get_all_operations())
    }
    assert set(VALID) <= set(operations), sorted(operations)
    for key, parts in VALID.items():
        case = operations[key].Case(**{name: dict(value) for name, value in parts.items()})
        _dress(case, "widget", widget)
        response = case.call()
        assert 200 <= response.status_code < 300, _describe(response, case, "widget")
