# The inbox index in the inbox's order. A NullsOrderIndex: PostgreSQL gets NULLS LAST;
# SQLite (the embedded mode) has no NULLS LAST in an index and needs none (it sorts NULLs
# last descending, the inbox's order already), so there it is left out.

from django.db import migrations, models

import core.indexes


class Migration(migrations.Migration):

    dependencies = [
        ('bots', '0003_bot_flow_rules_version'),
        ('crm', '0003_write_only_the_indexes_queries_use'),
        ('tenants', '0002_remove_tenant_webchat_enabled'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='conversation',
            name='crm_convers_tenant__06dade_idx',
        ),
        migrations.AddIndex(
            model_name='conversation',
            index=core.indexes.NullsOrderIndex(models.F('tenant'), models.OrderBy(models.F('last_message_at'), descending=True, nulls_last=True), models.OrderBy(models.F('id'), descending=True), name='conversation_inbox'),
        ),
    ]
