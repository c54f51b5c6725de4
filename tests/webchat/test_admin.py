import pytest
from django.urls import reverse

from tests.admin_forms import admin_form_data
from tests.factories import BotFactory, ConversationFactory
from tests.factories.webchat import (
    WebChatEventFactory,
    WebChatSessionFactory,
    WebChatSiteFactory,
)
from tests.widget_client import API
from webchat.models import WebChatEvent, WebChatSession, WebChatSite

pytestmark = pytest.mark.django_db


def change_url(obj) -> str:
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def changelist_url(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


class TestSiteForm:
    def test_bad_domains_colour_and_pow_are_field_errors(self, superuser_client, site):
        url = change_url(site)
        data = admin_form_data(
            superuser_client.get(url),
            allowed_domains='[1, {"a": 2}, "*"]',
            color="zzz",
            pow_difficulty="99",
        )
        response = superuser_client.post(url, data)
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert {"allowed_domains", "color", "pow_difficulty"} <= set(errors)
        site.refresh_from_db()
        assert site.allowed_domains == ["shop.example.com", "*.example.org"]
        assert site.color == "#2453d4"
        assert site.pow_difficulty == 0

    def test_good_values_are_cleaned_like_the_dashboard(self, superuser_client, site):
        url = change_url(site)
        data = admin_form_data(
            superuser_client.get(url),
            allowed_domains="Shop.Example.com\n*.shop.example.net, shop.example.com",
            color="#ABCDEF",
        )
        assert superuser_client.post(url, data).status_code == 302
        site.refresh_from_db()
        assert site.allowed_domains == ["shop.example.com", "*.shop.example.net"]
        assert site.color == "#abcdef"

    def test_another_tenants_bot_is_refused(self, superuser_client, site, other_tenant):
        theirs = BotFactory(tenant=other_tenant)
        url = change_url(site)
        data = admin_form_data(superuser_client.get(url), bot=str(theirs.pk))
        response = superuser_client.post(url, data)
        assert "bot" in response.context["adminform"].form.errors
        site.refresh_from_db()
        assert site.bot_id != theirs.pk

    def test_add_refuses_another_tenants_bot(self, superuser_client, tenant, other_tenant):
        url = reverse("admin:webchat_webchatsite_add")
        data = admin_form_data(
            superuser_client.get(url),
            tenant=str(tenant.pk),
            name="New shop",
            bot=str(BotFactory(tenant=other_tenant).pk),
            allowed_domains="new.example.com",
        )
        response = superuser_client.post(url, data)
        assert "bot" in response.context["adminform"].form.errors
        assert not WebChatSite.objects.filter(name="New shop").exists()
        data["bot"] = str(BotFactory(tenant=tenant).pk)
        response = superuser_client.post(url, data)
        assert response.status_code == 302, response.context["adminform"].form.errors
        created = WebChatSite.objects.get(name="New shop")
        assert created.tenant == tenant
        assert created.allowed_domains == ["new.example.com"]

    def test_tenant_is_read_only_on_change(self, superuser_client, site, other_tenant):
        url = change_url(site)
        data = admin_form_data(superuser_client.get(url), tenant=str(other_tenant.pk))
        assert superuser_client.post(url, data).status_code == 302
        site.refresh_from_db()
        assert site.tenant_id != other_tenant.pk

    def test_sites_cannot_be_deleted_in_the_admin(self, superuser_client, site):
        delete = reverse("admin:webchat_webchatsite_delete", args=[site.pk])
        assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
        assert WebChatSite.objects.filter(pk=site.pk).exists()


def test_a_bad_stored_rule_breaks_no_other_tenants_preflight(client, site, other_tenant):
    """A row written around the forms (a shell, an old admin) must not 500 the CORS check."""
    WebChatSiteFactory(tenant=other_tenant, allowed_domains=[1, {"a": 2}, "", None, "*x"])
    WebChatSiteFactory(tenant=other_tenant, allowed_domains={"not": "a list"})
    WebChatSiteFactory(tenant=other_tenant, allowed_domains=7)
    response = client.options(
        API + "init",
        HTTP_ORIGIN="https://shop.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://shop.example.com"
    evil = client.options(
        API + "init", HTTP_ORIGIN="https://evil.test", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert "Access-Control-Allow-Origin" not in evil


class TestSessionForm:
    def test_another_tenants_conversation_is_refused(self, superuser_client, site, other_tenant):
        session = WebChatSessionFactory(site=site)
        theirs = ConversationFactory(tenant=other_tenant)
        url = change_url(session)
        data = admin_form_data(superuser_client.get(url), conversation=str(theirs.pk))
        response = superuser_client.post(url, data)
        assert "conversation" in response.context["adminform"].form.errors
        session.refresh_from_db()
        assert session.conversation_id != theirs.pk


class TestEventsAreReadOnly:
    def test_no_change_no_add(self, superuser_client, site):
        event = WebChatEventFactory(session=WebChatSessionFactory(site=site))
        response = superuser_client.post(change_url(event), {"type": "error", "site": site.pk})
        event.refresh_from_db()
        assert event.type == "launcher_opened"
        assert response.status_code == 403
        assert superuser_client.get(reverse("admin:webchat_webchatevent_add")).status_code == 403


class TestChangelists:
    """Query counts do not grow with the rows shown (30 rows here; 100 in the review)."""

    @pytest.fixture
    def rows(self, site):
        sessions = [WebChatSessionFactory(site=site) for _ in range(30)]
        for session in sessions:
            WebChatEventFactory(session=session)
        return sessions

    @pytest.mark.parametrize("model", [WebChatSession, WebChatEvent])
    def test_query_count_is_flat(
        self, superuser_client, rows, model, django_assert_max_num_queries
    ):
        with django_assert_max_num_queries(12):
            response = superuser_client.get(changelist_url(model))
        assert response.status_code == 200
        assert len(response.context["cl"].result_list) == 30

    @pytest.mark.parametrize("model", [WebChatSession, WebChatEvent])
    def test_no_full_count_and_no_tenant_filter(self, superuser_client, rows, model):
        changelist = superuser_client.get(changelist_url(model)).context["cl"]
        assert changelist.show_full_result_count is False
        assert "tenant" not in changelist.list_filter
