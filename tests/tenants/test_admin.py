import pytest
from django.urls import reverse

from tenants.models import Membership, PlanTier, Role, Tenant
from tests.admin_forms import admin_form_data
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

PREFIX = "memberships"  # the inline's formset prefix (the related name)


def tenant_url(tenant) -> str:
    return reverse("admin:tenants_tenant_change", args=[tenant.pk])


def _row(page, membership) -> int:
    formset = page.context["inline_admin_formsets"][0].formset
    return next(n for n, f in enumerate(formset.forms) if f.instance.pk == membership.pk)


class TestMembershipInline:
    def test_last_owner_cannot_be_demoted(self, superuser_client, tenant, owner):
        membership = Membership.objects.get(user=owner, tenant=tenant)
        page = superuser_client.get(tenant_url(tenant))
        n = _row(page, membership)
        response = superuser_client.post(
            tenant_url(tenant), admin_form_data(page, **{f"{PREFIX}-{n}-role": Role.AGENT})
        )
        assert response.status_code == 200
        assert "at least one owner" in str(
            response.context["inline_admin_formsets"][0].formset.non_form_errors()
        )
        membership.refresh_from_db()
        assert membership.role == Role.OWNER

    def test_last_owner_cannot_be_deleted(self, superuser_client, tenant, owner):
        membership = Membership.objects.get(user=owner, tenant=tenant)
        page = superuser_client.get(tenant_url(tenant))
        n = _row(page, membership)
        response = superuser_client.post(
            tenant_url(tenant), admin_form_data(page, **{f"{PREFIX}-{n}-DELETE": "on"})
        )
        assert response.status_code == 200
        assert Membership.objects.filter(pk=membership.pk, role=Role.OWNER).exists()

    def test_an_owner_can_be_demoted_when_another_remains(self, superuser_client, tenant, owner):
        MembershipFactory(tenant=tenant, role=Role.OWNER)
        membership = Membership.objects.get(user=owner, tenant=tenant)
        page = superuser_client.get(tenant_url(tenant))
        n = _row(page, membership)
        response = superuser_client.post(
            tenant_url(tenant), admin_form_data(page, **{f"{PREFIX}-{n}-role": Role.AGENT})
        )
        assert response.status_code == 302
        membership.refresh_from_db()
        assert membership.role == Role.AGENT


class TestMembershipAdmin:
    def test_last_owner_cannot_be_demoted_or_deleted(self, superuser_client, tenant, owner):
        membership = Membership.objects.get(user=owner, tenant=tenant)
        url = reverse("admin:tenants_membership_change", args=[membership.pk])
        response = superuser_client.post(
            url, admin_form_data(superuser_client.get(url), role=Role.VIEWER)
        )
        assert "role" in response.context["adminform"].form.errors
        delete = reverse("admin:tenants_membership_delete", args=[membership.pk])
        assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
        membership.refresh_from_db()
        assert membership.role == Role.OWNER


class TestTenantAdmin:
    def test_change_page_reads_each_membership_row_once(
        self, superuser_client, tenant, owner, django_assert_max_num_queries
    ):
        """A row's title (user @ tenant) costs no query of its own; what remains per row is
        the user autocomplete's lookup of its selected option (Django's widget does one
        per form)."""
        url = tenant_url(tenant)
        for _ in range(2):
            MembershipFactory(tenant=tenant)
        superuser_client.get(url)
        with django_assert_max_num_queries(30) as few:
            superuser_client.get(url)
        for _ in range(27):
            MembershipFactory(tenant=tenant)
        with django_assert_max_num_queries(len(few.captured_queries) + 27):
            page = superuser_client.get(url)
        assert len(page.context["inline_admin_formsets"][0].formset.forms) == 30

    def test_plan_tier_is_read_only_on_change(self, superuser_client, tenant):
        url = tenant_url(tenant)
        page = superuser_client.get(url)
        assert "plan_tier" not in page.context["adminform"].form.fields
        assert "rollout audit trail" in page.content.decode()
        tier = tenant.plan_tier
        other = next(t for t in PlanTier.values if t != tier)
        assert superuser_client.post(url, admin_form_data(page, plan_tier=other)).status_code == 302
        tenant.refresh_from_db()
        assert tenant.plan_tier == tier

    def test_tenants_cannot_be_deleted_in_the_admin(self, superuser_client, tenant):
        delete = reverse("admin:tenants_tenant_delete", args=[tenant.pk])
        assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
        assert Tenant.objects.filter(pk=tenant.pk).exists()
