"""A site's canary flag changes one way only: the audited rollout screen (site_canary_set).

The webchat admin shows the flag read-only with a link to that screen; the tenant
dashboard's version lives in tests/webchat/test_dashboard.py.
"""

import pytest
from django.core.cache import cache
from django.urls import reverse

from rollout import services
from rollout.exceptions import NoChange
from rollout.models import AuditAction, AuditEntry, Mode
from rollout.selectors import GENERATION_KEY, Decision, generation_get, webchat_allowed
from tests.factories.rollout import RolloutPolicyFactory, TenantRolloutFactory
from webchat.admin import WebChatSiteAdmin
from webchat.models import WebChatSite

pytestmark = pytest.mark.django_db


def _admin_form_data(response) -> dict:
    """What the admin change form would post back unchanged."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = field.prepare_value(form[name].value())
        if value is False or value is None:
            continue
        data[name] = "on" if value is True else value
    return data


class TestWebChatAdmin:
    def change_url(self, site) -> str:
        return reverse("admin:webchat_webchatsite_change", args=[site.pk])

    def test_change_form_shows_the_flag_read_only_with_the_rollout_link(
        self, operator_client, site
    ):
        response = operator_client.get(self.change_url(site))
        assert response.status_code == 200
        assert "is_canary" not in response.context["adminform"].form.fields
        page = response.content.decode()
        assert 'name="is_canary"' not in page
        assert reverse("rollout:tenant", args=[site.tenant_id]) + "#sites" in page

    @pytest.mark.parametrize("start", [False, True])
    def test_posting_the_flag_changes_nothing(self, operator_client, site, start):
        WebChatSite.objects.filter(pk=site.pk).update(is_canary=start)
        generation = generation_get()
        data = _admin_form_data(operator_client.get(self.change_url(site)))
        data.update(title="Renamed by an operator", is_canary="" if start else "on")
        response = operator_client.post(self.change_url(site), data)
        assert response.status_code == 302, response.context["adminform"].form.errors
        site.refresh_from_db()
        assert site.title == "Renamed by an operator"  # the rest of the form still saves
        assert site.is_canary is start
        assert not AuditEntry.objects.exists()
        assert cache.get(GENERATION_KEY) == generation

    def test_a_flag_or_key_changed_while_the_admin_saves_is_kept(
        self, operator_client, site, monkeypatch
    ):
        data = _admin_form_data(operator_client.get(self.change_url(site)))
        data["title"] = "Renamed by an operator"
        real_save_form = WebChatSiteAdmin.save_form

        def save_form_after_a_concurrent_change(admin, request, form, change):
            # Another request lands after the admin read the row, before it writes it.
            WebChatSite.objects.filter(pk=site.pk).update(is_canary=True, site_key="wk_rotated01")
            return real_save_form(admin, request, form, change)

        monkeypatch.setattr(WebChatSiteAdmin, "save_form", save_form_after_a_concurrent_change)
        response = operator_client.post(self.change_url(site), data)
        assert response.status_code == 302, response.context["adminform"].form.errors
        site.refresh_from_db()
        assert site.title == "Renamed by an operator"
        assert (site.is_canary, site.site_key) == (True, "wk_rotated01")

    def test_adding_a_site_never_makes_a_canary(self, operator_client, tenant):
        add = reverse("admin:webchat_webchatsite_add")
        data = _admin_form_data(operator_client.get(add))
        data.update(
            tenant=tenant.pk, name="Blog", allowed_domains="blog.example.com", is_canary="on"
        )
        response = operator_client.post(add, data)
        assert response.status_code == 302, response.context["adminform"].form.errors
        assert WebChatSite.objects.get(tenant=tenant, name="Blog").is_canary is False


class TestAuditedToggle:
    def test_one_audit_row_and_a_new_generation_take_effect_at_once(self, operator, site):
        RolloutPolicyFactory(mode=Mode.PILOT)
        TenantRolloutFactory(tenant=site.tenant, in_pilot=True, canary_only=True)
        assert webchat_allowed(site) == Decision(False, "site_not_canary")  # now cached
        generation = generation_get()

        services.site_canary_set(site=site, actor=operator, reason="low-risk blog", is_canary=True)

        assert cache.get(GENERATION_KEY) != generation
        assert webchat_allowed(site) == Decision(True, "pilot")  # not after the TTL: now
        entry = AuditEntry.objects.get()
        assert entry.action == AuditAction.SITE_CANARY
        assert (entry.actor, entry.site, entry.reason) == (operator, site, "low-risk blog")
        assert entry.before == {"site": site.name, "is_canary": False}
        assert entry.after == {"site": site.name, "is_canary": True}
        assert entry.metrics  # the gate snapshot of the tenant

    def test_before_is_read_from_the_row_not_the_callers_copy(self, operator, site):
        stale = WebChatSite.objects.get(pk=site.pk)
        services.site_canary_set(site=site, actor=operator, reason="first", is_canary=True)
        with pytest.raises(NoChange):  # the row is a canary already: no second audit row
            services.site_canary_set(site=stale, actor=operator, reason="second", is_canary=True)
        services.site_canary_set(site=stale, actor=operator, reason="undo", is_canary=False)
        entries = list(AuditEntry.objects.order_by("pk"))
        assert [(e.before["is_canary"], e.after["is_canary"]) for e in entries] == [
            (False, True),
            (True, False),
        ]
