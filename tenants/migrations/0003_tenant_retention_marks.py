"""`Tenant.retention_marks`: where data retention got to, by kind of data (tenants.retention).
Empty for every tenant, so each one's next run starts from the first row, as before."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_remove_tenant_webchat_enabled"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="retention_marks",
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
    ]
