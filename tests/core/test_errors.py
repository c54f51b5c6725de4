"""Paths no API view answers still answer in the API's error shape, never an HTML page."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api/webchat/v1/config/",  # a trailing slash the route does not have
        "/api/webchat/v1/nothing",
        "/api/webchat/v2/config",
        "/api/webhooks/chatwoot/",
        "/api/",
    ],
)
def test_unknown_api_paths_get_a_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["message"]


def test_other_unknown_paths_keep_the_html_page(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_an_unexpected_api_error_is_json_too(settings, monkeypatch):
    from webchat.api import public

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(public.ConfigApi, "get", explode)
    client = Client(raise_request_exception=False)
    response = client.get("/api/webchat/v1/config", {"site_key": "wk_x"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "server_error",
            "message": "Something went wrong on our side. Try again later.",
        }
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/admin/tenants/tenant/?plan_tier=%00",
        "/admin/tenants/tenant/?q=North%00wind",
        "/admin/autocomplete/?term=%00&app_label=crm&model_name=conversation&field_name=contact",
    ],
)
def test_a_nul_byte_in_the_query_is_dropped_not_a_500(client, superuser, tenant, url):
    """PostgreSQL text cannot hold NUL: Django admin's filters would hand it over."""
    client.force_login(superuser)
    response = client.get(url)
    assert response.status_code in (200, 302, 403)  # autocomplete: no such relation admin
    if "q=North" in url:
        assert list(response.context["cl"].result_list) == [tenant]


@pytest.mark.django_db
def test_a_nul_byte_in_an_api_query_is_dropped(client):
    response = client.get("/api/webchat/v1/config?site_key=wk_%00")
    assert response.status_code in (400, 404)
    assert response.json()["error"]["code"] in ("invalid_request", "unknown_site")
