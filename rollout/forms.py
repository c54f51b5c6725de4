"""Forms of the operator screens. Each change carries a required reason (audited)."""

import json

from django import forms
from django.conf import settings
from django.utils import timezone

from rollout.models import Mode, Override, ScheduledChange, ScheduleStatus, Stage, TenantRollout
from tenants.models import PlanTier, Tenant
from webchat.models import WebChatSite

# No tenant name is longer (NULs, which PostgreSQL text cannot hold, the middleware drops).
TENANT_QUERY_MAX = 200


class TenantSearchForm(forms.Form):
    """A search of the tenants by name or slug (part of either, any case)."""

    q = forms.CharField(required=False, max_length=TENANT_QUERY_MAX, label="Find tenant")


class ReasonField(forms.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("min_length", 3)
        kwargs.setdefault("max_length", 2000)
        kwargs.setdefault(
            "widget", forms.TextInput(attrs={"placeholder": "Why? (goes into the audit log)"})
        )
        kwargs.setdefault("help_text", "Required: recorded in the audit log with the metrics.")
        super().__init__(required=True, **kwargs)


class ScheduleMixin(forms.Form):
    apply_at = forms.DateTimeField(
        required=False,
        label="Apply at (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Leave empty to apply now; a future time schedules the change.",
    )

    def clean_apply_at(self):
        value = self.cleaned_data.get("apply_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("Pick a time in the future, or leave it empty.")
        return value


class LoadedStateMixin(forms.Form):
    """The state the page showed when it was loaded (JSON), so that a save changes only what
    this operator edited, and refuses what someone else changed meanwhile."""

    loaded = forms.CharField(widget=forms.HiddenInput, required=False)

    def clean_loaded(self) -> dict | None:
        raw = self.cleaned_data.get("loaded")
        if not raw:
            return None  # a form without it (a script): compared with the current state
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise forms.ValidationError("This page is out of date: reload it.")
        return value

    @staticmethod
    def loaded_value(state: dict) -> str:
        return json.dumps(state, sort_keys=True, default=str)


class PolicyForm(LoadedStateMixin, ScheduleMixin):
    mode = forms.ChoiceField(choices=Mode.choices, widget=forms.RadioSelect)
    allowed_tiers = forms.MultipleChoiceField(
        choices=PlanTier.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Plan tiers (tiered mode)",
    )
    webchat_enabled = forms.BooleanField(
        required=False, label="Webchat enabled (untick to pull the global kill switch)"
    )
    override_gates = forms.BooleanField(
        required=False,
        label="Widen even though the SLO gates do not pass",
        help_text="Recorded in the audit log as a gate override.",
    )
    reason = ReasonField()
    field_order = ["mode", "allowed_tiers", "webchat_enabled", "apply_at", "override_gates"]


class KillSwitchForm(forms.Form):
    reason = ReasonField()


class TenantRolloutForm(LoadedStateMixin, ScheduleMixin):
    override = forms.ChoiceField(choices=Override.choices, required=False)
    in_pilot = forms.BooleanField(required=False, label="In the pilot list")
    canary_only = forms.BooleanField(
        required=False,
        label="Canary sites only",
        help_text="In the pilot, serve canary sites only.",
    )
    reason = ReasonField()
    field_order = ["override", "in_pilot", "canary_only", "apply_at"]


class PilotAddForm(forms.Form):
    """Posted from a row of the tenant table (never rendered with a list of every tenant)."""

    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), widget=forms.HiddenInput)
    canary_only = forms.BooleanField(required=False, label="Canary sites only")
    reason = ReasonField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        in_pilot = TenantRollout.objects.filter(in_pilot=True).values("tenant_id")
        self.fields["tenant"].queryset = Tenant.objects.exclude(pk__in=in_pilot).order_by("name")


class TenantActionForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all(), widget=forms.HiddenInput)
    reason = ReasonField(widget=forms.TextInput(attrs={"placeholder": "Reason", "size": 18}))


class DemoteForm(TenantActionForm):
    target = forms.ChoiceField(
        choices=[(s.value, s.label) for s in (Stage.OFF, Stage.CANARY, Stage.PILOT)],
        initial=lambda: settings.ROLLOUT_DEMOTION_TARGET,
    )


class CancelScheduleForm(forms.Form):
    change = forms.ModelChoiceField(
        queryset=ScheduledChange.objects.filter(status=ScheduleStatus.PENDING),
        widget=forms.HiddenInput,
    )
    reason = ReasonField(widget=forms.TextInput(attrs={"placeholder": "Reason", "size": 18}))


class SiteCanaryForm(forms.Form):
    site = forms.ModelChoiceField(queryset=WebChatSite.objects.none(), widget=forms.HiddenInput)
    is_canary = forms.BooleanField(required=False, widget=forms.HiddenInput)
    reason = ReasonField(widget=forms.TextInput(attrs={"placeholder": "Reason", "size": 18}))

    def __init__(self, *args, tenant: Tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = WebChatSite.objects.filter(tenant=tenant)
