from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import Avg, Count, Max, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.admin import TenantOwnedAdmin, TenantScopedAdminForm, ViewOnlyAdmin
from support.health import connection_warnings
from support.models import (
    ApprovalItem,
    ChatwootConnection,
    ChatwootConversationLink,
    HealthCheck,
    MaintenanceWindow,
    OutboundRetry,
    RetryStatus,
    SupportAlert,
    WebhookDelivery,
)


class ChatwootConnectionForm(TenantScopedAdminForm):
    """Secrets are write-only: leave a field empty to keep what is stored."""

    base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="e.g. https://chatwoot.example.com",
    )
    api_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Chatwoot API access token (profile settings). Empty keeps the stored one.",
    )
    webhook_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The webhook's signing secret from Chatwoot (4.11+). Empty keeps the stored one.",
    )

    class Meta:
        model = ChatwootConnection
        fields = [
            "tenant",
            "name",
            "active",
            "base_url",
            "account_id",
            "inbox_id",
            "token_from_env",
            "allow_unsigned_webhooks",
            "bot",
            "sla_minutes",
            "health_path",
            "embed_token",
        ]

    def save(self, commit=True):
        connection = super().save(commit=False)
        if self.cleaned_data.get("api_token"):
            connection.set_api_token(self.cleaned_data["api_token"])
        if self.cleaned_data.get("webhook_secret"):
            connection.set_webhook_secret(self.cleaned_data["webhook_secret"])
        if commit:
            connection.save()
        return connection


class MaintenanceWindowInline(admin.TabularInline):
    model = MaintenanceWindow
    extra = 0
    fields = ["starts_at", "ends_at", "recurrence", "reason"]


@admin.register(ChatwootConnection)
class ChatwootConnectionAdmin(TenantOwnedAdmin):
    form = ChatwootConnectionForm
    tenant_scoped_fields = ("bot",)
    list_display = [
        "name",
        "tenant",
        "base_url",
        "account_id",
        "active",
        "success_rate_24h",
        "platform_ms_24h",
        "api_ms_24h",
        "last_failure",
        "webhook_mode",
    ]
    list_filter = ["active", "allow_unsigned_webhooks"]
    search_fields = ["name", "base_url", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant"]
    raw_id_fields = ["bot"]
    readonly_fields = ["webhook_url", "diagnostics"]
    inlines = [MaintenanceWindowInline]
    fieldsets = [
        (None, {"fields": ["tenant", "name", "active", "base_url", "account_id", "inbox_id"]}),
        ("Credentials", {"fields": ["api_token", "token_from_env", "webhook_secret"]}),
        (
            "Webhooks",
            {"fields": ["webhook_url", "allow_unsigned_webhooks", "diagnostics"]},
        ),
        ("Drafts and SLA", {"fields": ["bot", "sla_minutes", "health_path", "embed_token"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        since = timezone.now() - timedelta(hours=24)
        recent = Q(health_checks__created_at__gte=since)
        counted = recent & Q(health_checks__in_maintenance=False)
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_checks=Count("health_checks", filter=counted),
                n_passed=Count("health_checks", filter=counted & Q(health_checks__exit_code=0)),
                avg_platform=Avg("health_checks__platform_ms", filter=recent),
                avg_api=Avg("health_checks__api_ms", filter=recent),
                last_failed=Max("health_checks__created_at", filter=~Q(health_checks__exit_code=0)),
            )
        )

    @admin.display(description="Success (24 h)")
    def success_rate_24h(self, obj) -> str:
        if not getattr(obj, "n_checks", 0):
            return "—"
        return f"{100 * obj.n_passed / obj.n_checks:.1f} % of {obj.n_checks}"

    @admin.display(description="Platform ms")
    def platform_ms_24h(self, obj) -> str:
        value = getattr(obj, "avg_platform", None)
        return "—" if value is None else f"{value:.0f}" + (" ⚠" if value >= 500 else "")

    @admin.display(description="API ms")
    def api_ms_24h(self, obj) -> str:
        value = getattr(obj, "avg_api", None)
        return "—" if value is None else f"{value:.0f}" + (" ⚠" if value >= 500 else "")

    @admin.display(description="Last failure")
    def last_failure(self, obj):
        return getattr(obj, "last_failed", None) or "—"

    @admin.display(description="Webhooks")
    def webhook_mode(self, obj) -> str:
        if obj.webhook_unsigned:
            return "⚠ unsigned accepted"
        return "signed" if obj.webhook_secret_encrypted else "⚠ no secret"

    @admin.display(description="Webhook URL (enter it in Chatwoot)")
    def webhook_url(self, obj) -> str:
        if obj.pk is None:
            return "Shown once saved."
        return reverse("support_api:chatwoot_webhook", kwargs={"token": obj.webhook_token})

    @admin.display(description="Diagnostics")
    def diagnostics(self, obj):
        if obj.pk is None:
            return "—"
        warnings = connection_warnings(obj) + [f"Missing: {m}" for m in obj.missing_settings()]
        if not warnings:
            return "No problems found."
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((w,) for w in warnings))
        )


@admin.register(HealthCheck)
class HealthCheckAdmin(admin.ModelAdmin):
    show_full_result_count = False  # a filtered page counts its rows only
    list_display = [
        "created_at",
        "tenant",
        "connection",
        "exit_code",
        "platform_status",
        "platform_ms",
        "api_status",
        "api_ms",
        "in_maintenance",
    ]
    list_filter = ["exit_code", "in_maintenance"]
    search_fields = ["connection__name", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant", "connection"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# Processing writes into the tenant's conversations and posts to its Chatwoot: only for
# operators who may change the row, as with "Retry now".
@admin.action(
    description="Process again (only valid deliveries never processed or that failed)",
    permissions=["change"],
)
def reprocess(modeladmin, request, queryset):
    """Queue the deliveries that never got processed (a failure leaves `processed` off).

    A processed one is never replayed: an old `status: open` would reopen a conversation
    resolved since."""
    from support.tasks import process_webhook

    ids = list(queryset.filter(valid=True, processed=False).values_list("pk", flat=True))
    for delivery_id in ids:
        process_webhook.delay(delivery_id=delivery_id)
    skipped = queryset.count() - len(ids)
    messages.success(request, f"{len(ids)} delivery(ies) queued for processing.")
    if skipped:
        messages.warning(
            request, f"{skipped} skipped: already processed, or invalid (never replayed)."
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    show_full_result_count = False  # a filtered page counts its rows only
    list_display = [
        "created_at",
        "tenant",
        "connection",
        "event",
        "valid",
        "signed",
        "processed",
        "outcome",
    ]
    list_filter = ["valid", "processed", "signed", "event"]
    search_fields = ["delivery_key", "outcome", "error", "tenant__slug"]
    list_select_related = ["tenant", "connection"]
    date_hierarchy = "created_at"
    actions = [reprocess]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ChatwootConversationLink)
class ChatwootConversationLinkAdmin(ViewOnlyAdmin):
    """Written by the sync and the SLA monitor only: an edited cursor, Chatwoot id or status
    would post messages twice or skip them."""

    show_full_result_count = False  # a filtered page counts its rows only

    list_display = [
        "chatwoot_conversation_id",
        "tenant",
        "connection",
        "conversation",
        "status",
        "contact_name",
        "first_customer_message_at",
        "first_response_at",
        "breached_at",
    ]
    list_filter = ["status"]
    search_fields = ["contact_name", "chatwoot_conversation_id", "tenant__slug"]
    list_select_related = ["tenant", "connection", "conversation"]


@admin.register(ApprovalItem)
class ApprovalItemAdmin(ViewOnlyAdmin):
    """Shown only: approving or rejecting goes through the tenant's approval queue, which
    sends the reply (a status set here would send nothing)."""

    show_full_result_count = False  # a filtered page counts its rows only

    list_display = ["id", "tenant", "status", "due_at", "draft_outcome", "decided_by", "sent_at"]
    list_filter = ["status", "draft_outcome"]
    search_fields = ["customer_text", "draft_text", "final_text", "tenant__slug"]
    list_select_related = ["tenant", "decided_by"]


# Retrying calls the tenant's Chatwoot: only for operators who may change the row (an
# action without `permissions` is offered to anyone who can see the list).
@admin.action(description="Retry now", permissions=["change"])
def retry_now(modeladmin, request, queryset):
    from support.tasks import retry_outbound

    rows = list(queryset.exclude(status=RetryStatus.DONE))
    for row in rows:
        retry_outbound.delay(retry_id=row.pk)
    messages.success(request, f"{len(rows)} operation(s) queued for another attempt.")


@admin.register(OutboundRetry)
class OutboundRetryAdmin(TenantOwnedAdmin):
    """Only when (and whether) beat retries is editable; status and attempts are the task's."""

    list_display = [
        "id",
        "tenant",
        "operation",
        "object_id",
        "status",
        "retryable",
        "attempts",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = ["status", "operation", "retryable"]
    search_fields = ["last_error", "tenant__slug"]
    list_select_related = ["tenant"]
    actions = [retry_now]
    readonly_fields = [
        "tenant",
        "connection",
        "operation",
        "object_id",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "updated_at",
        "done_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(SupportAlert)
class SupportAlertAdmin(ViewOnlyAdmin):
    show_full_result_count = False  # a filtered page counts its rows only
    list_display = [
        "created_at",
        "tenant",
        "kind",
        "level",
        "delivered",
        "pending",
        "suppressed",
        "text",
    ]
    list_filter = ["kind", "level", "delivered", "pending", "suppressed"]
    search_fields = ["text", "tenant__slug"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
