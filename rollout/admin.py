"""Read-only admin for rollout records: every change goes through the rollout screen
(`/admin/webchat-rollout`), which asks for a reason and writes the audit trail."""

import json

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from rollout.models import AuditEntry, GateEvaluation, RolloutPolicy, ScheduledChange, TenantRollout


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _pretty(value) -> str:
    return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(value, indent=2))


@admin.register(RolloutPolicy)
class RolloutPolicyAdmin(ReadOnlyAdmin):
    """The policy is edited on the rollout screen; its admin entry leads there."""

    def changelist_view(self, request, extra_context=None):
        return HttpResponseRedirect(reverse("rollout:screen"))


@admin.register(TenantRollout)
class TenantRolloutAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "override", "in_pilot", "canary_only", "gate_since", "updated_at"]
    list_filter = ["override", "in_pilot", "canary_only"]
    search_fields = ["tenant__name", "tenant__slug"]
    list_select_related = ["tenant"]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The id comes from the URL as typed: one that is no tenant's is a 404, not a 500
        # from reversing a tenant page with it.
        state = self.get_object(request, unquote(object_id))
        if state is None:
            raise Http404("No such tenant rollout.")
        return HttpResponseRedirect(reverse("rollout:tenant", args=[state.pk]))


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    show_full_result_count = False  # a filtered page counts its rows only
    list_display = ["created_at", "action", "actor_label", "tenant", "site", "short_reason"]
    list_filter = ["action"]
    search_fields = ["actor_label", "reason", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant", "site"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "action",
        "actor",
        "actor_label",
        "tenant",
        "site",
        "scheduled_change",
        "reason",
        "before_pretty",
        "after_pretty",
        "metrics_pretty",
    ]
    readonly_fields = fields

    @admin.display(description="reason")
    def short_reason(self, entry: AuditEntry) -> str:
        return entry.reason if len(entry.reason) <= 80 else entry.reason[:79] + "…"

    @admin.display(description="before")
    def before_pretty(self, entry: AuditEntry) -> str:
        return _pretty(entry.before)

    @admin.display(description="after")
    def after_pretty(self, entry: AuditEntry) -> str:
        return _pretty(entry.after)

    @admin.display(description="gate metrics then")
    def metrics_pretty(self, entry: AuditEntry) -> str:
        return _pretty(entry.metrics)


@admin.register(ScheduledChange)
class ScheduledChangeAdmin(ReadOnlyAdmin):
    list_display = ["id", "run_at", "target", "tenant", "status", "created_by_label", "applied_at"]
    list_filter = ["status", "target"]
    search_fields = ["reason", "tenant__name"]
    list_select_related = ["tenant"]


@admin.register(GateEvaluation)
class GateEvaluationAdmin(ReadOnlyAdmin):
    show_full_result_count = False  # a filtered page counts its rows only
    list_display = ["created_at", "tenant", "status", "samples", "action"]
    list_filter = ["status"]
    search_fields = ["tenant__name", "tenant__slug"]
    list_select_related = ["tenant"]
    fields = [
        "created_at",
        "tenant",
        "status",
        "samples",
        "window_start",
        "window_end",
        "action",
        "result_pretty",
    ]
    readonly_fields = fields

    @admin.display(description="result")
    def result_pretty(self, evaluation: GateEvaluation) -> str:
        return _pretty(evaluation.result)
