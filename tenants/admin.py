from django import forms
from django.contrib import admin
from django.http import HttpRequest

from tenants.models import Membership, Role, Tenant
from tenants.services import owners_left

LAST_OWNER = "A tenant needs at least one owner: make someone else owner first."


class MembershipInlineFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if self.instance.pk is None or any(self.errors):
            return
        dropping, adding = set(), 0
        for form in self.forms:
            member = form.instance
            gone = self.can_delete and self._should_delete_form(form)
            role = form.cleaned_data.get("role", member.role)
            was_owner = member.pk is not None and form.initial.get("role") == Role.OWNER
            if was_owner and (gone or role != Role.OWNER):
                dropping.add(member.pk)
            elif not gone and role == Role.OWNER and form.has_changed():
                adding += 1
        if dropping and not owners_left(self.instance.pk, dropping=dropping, adding=adding):
            raise forms.ValidationError(LAST_OWNER)


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipInlineFormSet
    extra = 0
    autocomplete_fields = ["user"]

    def get_queryset(self, request: HttpRequest):
        # Each row's title is `user @ tenant`: without these, two queries per member.
        return super().get_queryset(request).select_related("user", "tenant")


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "plan_tier",
        "pii_retention_days",
        "created_at",
    ]
    list_filter = ["plan_tier"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "plan_tier", "plan_tier_note"] if obj is not None else fields

    @admin.display(description="Changing the plan")
    def plan_tier_note(self, tenant: Tenant) -> str:
        # The plan tier decides whether the tenant gets webchat (the rollout's allowed
        # tiers), and no service writes a plan change with its rollout audit entry yet.
        return (
            "Read-only here: the plan decides whether the tenant gets webchat, and a change "
            "made here would skip the rollout audit trail. Use a per-tenant override on the "
            "rollout screen instead."
        )

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # The confirmation page would collect every message, event and session of the tenant.
        return False


class MembershipAdminForm(forms.ModelForm):
    def clean_role(self) -> str:
        role = self.cleaned_data["role"]
        member = self.instance
        demoted = member.pk and self.initial.get("role") == Role.OWNER and role != Role.OWNER
        if demoted and not owners_left(member.tenant_id, dropping={member.pk}):
            raise forms.ValidationError(LAST_OWNER)
        return role


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipAdminForm
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "user__username", "tenant__name", "tenant__slug"]
    list_select_related = ["user", "tenant"]
    autocomplete_fields = ["user", "tenant"]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "user", "tenant"] if obj is not None else fields

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # could remove every owner at once
        return actions

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        last_owner = obj is not None and obj.role == Role.OWNER
        if last_owner and not owners_left(obj.tenant_id, dropping={obj.pk}):
            return False
        return super().has_delete_permission(request, obj)
