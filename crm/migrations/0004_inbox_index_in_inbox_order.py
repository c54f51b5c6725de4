# The inbox index in the inbox's order. SQLite (the embedded mode) has no NULLS LAST in an
# index, and needs none: it sorts NULLs first ascending, so last descending, which is the
# inbox's order already. So the index is created per database; the model state is the same
# (a NullsOrderIndex: a SQLite table remake rebuilds it without NULLS LAST).

from django.db import migrations, models

import core.indexes

INBOX = (
    'CREATE INDEX "conversation_inbox" ON "crm_conversation" '
    '("tenant_id", "last_message_at" DESC{nulls}, "id" DESC)'
)


def inbox_index_create(apps, schema_editor):
    nulls = " NULLS LAST" if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(INBOX.format(nulls=nulls))


def inbox_index_drop(apps, schema_editor):
    schema_editor.execute('DROP INDEX "conversation_inbox"')


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
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name='conversation',
                    index=core.indexes.NullsOrderIndex(models.F('tenant'), models.OrderBy(models.F('last_message_at'), descending=True, nulls_last=True), models.OrderBy(models.F('id'), descending=True), name='conversation_inbox'),
                ),
            ],
            database_operations=[migrations.RunPython(inbox_index_create, inbox_index_drop)],
        ),
    ]
