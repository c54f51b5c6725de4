from django import forms

from tenants.models import Role, Tenant


class TenantSettingsForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["name", "pii_retention_days"]
        labels = {"pii_retention_days": "Visitor data retention (days)"}
        help_texts = {"pii_retention_days": "1 to 3650 days."}


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.AGENT)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class SwitchTenantForm(forms.Form):
    tenant_id = forms.IntegerField(min_value=1)
