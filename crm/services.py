import functools

from django.db import connections, router, transaction
from django.utils import timezone

from core import rows
from core.exceptions import InvalidRequest
from crm.models import Conversation, ConversationStatus, Message


@transaction.atomic
def conversation_set_status(*, conversation: Conversation, status: str) -> Conversation:
    if status not in ConversationStatus.values:
        raise InvalidRequest(f"Unknown status {status!r}.")
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    conversation.status = status
    now = timezone.now()
    fields = ["status", "updated_at"]
    if status == ConversationStatus.RESOLVED:
        conversation.resolved_at = now
        fields.append("resolved_at")
    elif status == ConversationStatus.HANDOFF and conversation.handed_off_at is None:
        conversation.handed_off_at = now
        fields.append("handed_off_at")
    conversation.save(update_fields=fields)
    return conversation


def message_insert_once(message: Message) -> bool:
    """Insert an unsaved message unless its conversation already holds one with the same
    `client_message_id`; True (and `message.pk` set) when it was inserted.

    One `INSERT ... ON CONFLICT DO NOTHING RETURNING id` on the partial unique index
    (PostgreSQL and SQLite alike), so an idempotent retry needs no savepoint around the
    insert and no read before it. `Message` sends no signals; none are sent here.
    """
    connection = connections[router.db_for_write(Message)]
    values = message_insert_values(connection, message)
    with rows.cursor(connection) as cursor:
        cursor.execute(message_insert_sql(connection.alias), values)
        row = cursor.fetchone()
    if row is None:
        return False
    rows.inserted(connection, message, row[0])
    return True


def message_insert_values(connection, message: Message) -> list:
    """The parameters of `message_insert_sql` for an unsaved message (its timestamps set)."""
    if not message.client_message_id:
        raise ValueError("an idempotent insert needs a client_message_id")
    now = timezone.now()
    message.created_at = message.created_at or now
    message.updated_at = now
    return [
        f.get_db_prep_save(getattr(message, f.attname), connection)
        for f in rows.insert_fields(Message)
    ]


@functools.cache
def message_insert_sql(alias: str, *, source: str | None = None) -> str:
    """`INSERT ... ON CONFLICT DO NOTHING RETURNING id` for one message; its values are
    `message_insert_values`. With `source` (a table or CTE name), the row is inserted once
    per row of `source` (`INSERT ... SELECT <values> FROM source`) instead of `VALUES`."""
    quote = connections[alias].ops.quote_name
    conversation, client_id = (
        quote(Message._meta.get_field(name).column)
        for name in ("conversation", "client_message_id")
    )
    pk = quote(Message._meta.pk.column)
    into, placeholders = rows.insert_into(Message, alias)
    # Built from the model's own quoted identifiers only; the values go as parameters.
    select = "SELECT {} FROM {}"
    values = f"VALUES ({placeholders})" if source is None else select.format(placeholders, source)
    sql = f"{into} {values} "
    sql += f"ON CONFLICT ({conversation}, {client_id}) WHERE {client_id} IS NOT NULL "
    sql += f"DO NOTHING RETURNING {pk}"
    return sql
