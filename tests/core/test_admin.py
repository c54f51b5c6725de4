"""The Django admin names the tenant of every tenant-owned row it lists."""

from django.contrib import admin

from core.models import TenantOwnedModel


def test_every_tenant_owned_list_shows_its_tenant():
    without = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if issubclass(model, TenantOwnedModel) and "tenant" not in model_admin.list_display
    ]
    assert without == []
