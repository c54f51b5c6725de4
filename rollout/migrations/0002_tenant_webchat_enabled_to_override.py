"""Move the foundation's per-tenant switch (`Tenant.webchat_enabled`) into the rollout.

A tenant with the switch off becomes `TenantRollout.override = "off"` (forced off), with an
audit entry; `tenants.0002` then drops the old column, so one switch remains.
"""

from django.db import migrations

REASON = "Tenant.webchat_enabled was off: moved to the rollout override (forced off)."


def forwards(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    TenantRollout = apps.get_model("rollout", "TenantRollout")
    AuditEntry = apps.get_model("rollout", "AuditEntry")
    for tenant in Tenant.objects.filter(webchat_enabled=False):
        TenantRollout.objects.update_or_create(tenant=tenant, defaults={"override": "off"})
        AuditEntry.objects.create(
            actor_label="migration",
            action="migrated",
            tenant=tenant,
            before={"webchat_enabled": False},
            after={"override": "off", "in_pilot": False, "canary_only": False},
            reason=REASON,
        )


def backwards(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    TenantRollout = apps.get_model("rollout", "TenantRollout")
    forced_off = TenantRollout.objects.filter(override="off").values_list("tenant_id", flat=True)
    Tenant.objects.filter(pk__in=list(forced_off)).update(webchat_enabled=False)


class Migration(migrations.Migration):
    dependencies = [
        ("rollout", "0001_initial"),
        ("tenants", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
