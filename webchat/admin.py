from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from webchat.models import WebChatEvent, WebChatHourlyRollup, WebChatSession, WebChatSite


@admin.register(WebChatSite)
class WebChatSiteAdmin(admin.ModelAdmin):
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
    list_filter = ["tenant", "active", "is_canary", "require_consent", "telemetry_enabled"]
    search_fields = ["name", "site_key", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant", "bot"]
    # The canary flag is a rollout decision: it changes only on the tenant's rollout screen,
    # which asks for a reason, writes the audit row and stales every cached decision at once.
    exclude = ["is_canary"]
    readonly_fields = ["site_key", "previous_site_key", "previous_key_expires_at", "canary"]
    raw_id_fields = ["bot"]

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
class WebChatSessionAdmin(admin.ModelAdmin):
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
    list_filter = ["tenant", "site"]
    search_fields = ["visitor_id", "origin", "page_url", "tenant__name"]
    list_select_related = ["tenant", "site"]
    raw_id_fields = ["conversation", "site"]


@admin.register(WebChatEvent)
class WebChatEventAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "site", "type", "session", "created_at"]
    list_filter = ["type", "tenant"]
    search_fields = ["site__name", "tenant__name"]
    list_select_related = ["tenant", "site"]
    raw_id_fields = ["session", "site"]
    date_hierarchy = "created_at"


@admin.register(WebChatHourlyRollup)
class WebChatHourlyRollupAdmin(admin.ModelAdmin):
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
    list_filter = ["tenant", "site"]
    list_select_related = ["tenant", "site"]
    date_hierarchy = "hour"
