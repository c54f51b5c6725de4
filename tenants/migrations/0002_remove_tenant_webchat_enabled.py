"""`Tenant.webchat_enabled` moved into the rollout app (TenantRollout.override); see
rollout.0002, which copies the switched-off tenants first."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0001_initial"),
        ("rollout", "0002_tenant_webchat_enabled_to_override"),
    ]

    operations = [migrations.RemoveField(model_name="tenant", name="webchat_enabled")]
