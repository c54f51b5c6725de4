from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from core.admin import TenantOwnedAdmin, TenantScopedAdminForm, ViewOnlyAdmin
from webchat.forms import SiteForm
from webchat.models import Position, WebChatEvent, WebChatHourlyRollup, WebChatSession, WebChatSite


class WebChatSiteAdminForm(SiteForm, TenantScopedAdminForm):
    """The dashboard's site form (domains, colour, locale, proof-of-work limits) plus the
    tenant on add; the bot must be one of the site's tenant."""

    class Meta(SiteForm.Meta):
        fields = ["tenant", *SiteForm.Meta.fields]

    def __init__(self, *args, **kwargs) -> None:
        # SiteForm takes the tenant as an argument; here it is the row's (or the posted) one.
        super(SiteForm, self).__init__(*args, **kwargs)
        self.tenant = self.instance.tenant if self.instance.tenant_id else None
        for name in self.declared_fields:  # an add page shows the model's defaults
            if name in self.fields and self.instance.pk is None:
                self.fields[name].initial = getattr(self.instance, name)
        if "position" in self.fields:
            self.fields["position"].choices = Position.choices

    def clean_name(self) -> str:
        if self.tenant is None:  # on add: the posted tenant, cleaned before the name
            self.tenant = self.cleaned_data.get("tenant")
        if self.tenant is None:
            return " ".join(self.cleaned_data["name"].split())
        return super().clean_name()


@admin.register(WebChatSite)
class WebChatSiteAdmin(TenantOwnedAdmin):
    form = WebChatSiteAdminForm
    tenant_scoped_fields = ("bot",)
    list_display = [
        "name",
        "tenant",
        "site_key",
        "active",
        "is_canary",
        "bot",
        "pow_difficulty",
        "created_at",
    ]
    # No tenant filter: it would list every tenant on each page; search by tenant instead.
    list_filter = ["active", "is_canary", "require_consent", "telemetry_enabled"]
    search_fields = ["name", "site_key", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant", "bot"]
    # The canary flag is a rollout decision: it changes only on the tenant's rollout screen,
    # which asks for a reason, writes the audit row and stales every cached decision at once.
    exclude = ["is_canary"]
    readonly_fields = ["site_key", "previous_site_key", "previous_key_expires_at", "canary"]
    raw_id_fields = ["bot"]

    def has_delete_permission(self, request, obj=None) -> bool:
        # The confirmation page would collect every session, event and message of the site;
        # switch a site off (active) instead.
        return False

    def save_model(self, request, obj, form, change) -> None:
        """On a change, write only the fields the form changed: a key rotation or a canary
        flag set while the form was being saved (after the admin read the row) stays."""
        if not change:
            super().save_model(request, obj, form, change)
        elif form.changed_data:
            obj.save(update_fields=[*form.changed_data, "updated_at"])

    @admin.display(description="Canary site")
    def canary(self, site: WebChatSite) -> str:
        if site.pk is None:
            return "No. Mark it on its tenant's rollout screen once the site exists."
        return format_html(
            '{} <a href="{}#sites">Change on the rollout screen</a> (audited, needs a reason).',
            "Yes." if site.is_canary else "No.",
            reverse("rollout:tenant", args=[site.tenant_id]),
        )


@admin.register(WebChatSession)
class WebChatSessionAdmin(TenantOwnedAdmin):
    tenant_scoped_fields = ("site", "conversation")
    show_full_result_count = False
    list_display = [
        "id",
        "tenant",
        "site",
        "visitor_id",
        "conversation",
        "origin",
        "locale",
        "last_seen_at",
    ]
    search_fields = [
        "visitor_id",
        "origin",
        "page_url",
        "site__name",
        "tenant__name",
        "tenant__slug",
    ]
    list_select_related = ["tenant", "site", "conversation"]
    raw_id_fields = ["conversation", "site"]


@admin.register(WebChatEvent)
class WebChatEventAdmin(ViewOnlyAdmin):
    list_display = ["id", "tenant", "site", "type", "session", "created_at"]
    list_filter = ["type"]
    search_fields = ["site__name", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant", "site", "session"]
    show_full_result_count = False
    date_hierarchy = "created_at"


@admin.register(WebChatHourlyRollup)
class WebChatHourlyRollupAdmin(ViewOnlyAdmin):
    show_full_result_count = False  # a filtered page counts its rows only
    list_display = [
        "hour",
        "tenant",
        "site",
        "sessions",
        "messages_in",
        "messages_out",
        "error_events",
        "ai_fallback",
        "origin_denied",
        "rate_limited",
    ]
    search_fields = ["site__name", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant", "site"]
    date_hierarchy = "hour"
