"""What every admin of a tenant-owned model shares.

- The tenant is picked with an autocomplete on add (a select would list every tenant) and
  is read-only on change: moving a row to another tenant would leave its related rows
  (messages, sessions, rules) behind in the old one.
- The foreign keys listed in `tenant_scoped_fields` must point at a row of the same
  tenant: another tenant's bot on a site would answer from that tenant's knowledge.
"""

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest

OTHER_TENANT = "This belongs to another tenant: pick one of the row's own tenant."


class TenantScopedAdminForm(forms.ModelForm):
    tenant_scoped_fields: tuple[str, ...] = ()

    def clean(self) -> dict:
        cleaned = super().clean()
        tenant_id = self.row_tenant_id()
        if tenant_id is None:
            return cleaned
        for name in self.tenant_scoped_fields:
            related = cleaned.get(name)
            if name in self.fields and related is not None and related.tenant_id != tenant_id:
                self.add_error(name, OTHER_TENANT)
        return cleaned

    def row_tenant_id(self) -> int | None:
        """The posted tenant on add, the stored one on change (where it is read-only)."""
        if "tenant" in self.fields:
            tenant = self.cleaned_data.get("tenant")
            return tenant.pk if tenant is not None else None
        return self.instance.tenant_id


class TenantOwnedAdmin(admin.ModelAdmin):
    form = TenantScopedAdminForm
    tenant_scoped_fields: tuple[str, ...] = ()
    # A scheme-less URL typed by an operator (an LLM or Chatwoot base URL) means https.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and "tenant" not in fields:
            fields.append("tenant")
        return fields

    def get_autocomplete_fields(self, request: HttpRequest):
        fields = list(super().get_autocomplete_fields(request))
        return fields if "tenant" in fields else [*fields, "tenant"]

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.tenant_scoped_fields = tuple(self.tenant_scoped_fields)
        return form


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows written by the system (events, counters, alerts): shown, never added or edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
