"""The visitor-message route's locked read and insert, written once as SQL (`core.rows`).

`POST messages` runs on every visitor message. Its first statement locks the token's
conversation (with its bot) and checks the token's session in the same query; the message
is inserted only under that lock, so the ids of a conversation's messages follow commit
order (every writer of a conversation takes its lock first) and a poll cursor never passes
a message still to be committed. On PostgreSQL the lock and the idempotent insert are one
statement (a data-modifying CTE); elsewhere (SQLite, the embedded mode) two.
"""

from __future__ import annotations

import functools

from django.db import connections, router
from django.db.transaction import TransactionManagementError

from bots.models import Bot
from core.rows import Columns, cursor, inserted
from crm.models import Conversation, Message
from crm.services import message_insert_once, message_insert_sql, message_insert_values
from webchat.models import WebChatSession
from webchat.tokens import SessionClaims

_CONVERSATION = Columns.of(Conversation, "c")
_SESSION = Columns.of(WebChatSession, "s", ["last_seen_at"])
_BOT = Columns.of(Bot, "b")


def conversation_lock_and_insert(
    *, tenant_id: int, claims: SessionClaims, message: Message
) -> tuple[Conversation | None, bool]:
    """Lock the token's conversation and insert `message` into it unless it holds one
    with its client_message_id already: (the conversation, whether the message was
    inserted). (None, False) when the token's session is gone, is another visitor's or is
    in another conversation; nothing is inserted then.

    The conversation comes with its bot and the session's `last_seen_at` as
    `session_last_seen_at`. Needs a transaction (the lock lasts until it ends).
    """
    connection = connections[router.db_for_write(Conversation)]
    if not connection.in_atomic_block:
        raise TransactionManagementError("The conversation lock needs a transaction.")
    where = [
        tenant_id,
        claims.conversation_id,
        claims.session_id,
        claims.site_id,
        claims.visitor_id,
    ]
    if not _one_statement(connection):
        conversation = _locked(connection, _lock_sql(connection.alias), where)
        if conversation is None:
            return None, False
        return conversation, message_insert_once(message)
    values = message_insert_values(connection, message)
    with cursor(connection) as rows:
        rows.execute(_lock_and_insert_sql(connection.alias), [*where, *values])
        row = rows.fetchone()
    if row is None:
        return None, False
    conversation = _from_row(connection, row[:-1])
    if row[-1] is None:
        return conversation, False
    inserted(connection, message, row[-1])
    return conversation, True


def _one_statement(connection) -> bool:
    return connection.vendor == "postgresql"


def _locked(connection, sql: str, params: list) -> Conversation | None:
    with cursor(connection) as rows:
        rows.execute(sql, params)
        row = rows.fetchone()
    return None if row is None else _from_row(connection, row)


def _from_row(connection, row) -> Conversation:
    conversation_end = len(_CONVERSATION)
    bot_start = conversation_end + len(_SESSION)
    conversation = _CONVERSATION.load(connection, row[:conversation_end])
    (conversation.session_last_seen_at,) = _SESSION.values(
        connection, row[conversation_end:bot_start]
    )
    bot_row = row[bot_start:]
    conversation.bot = None if bot_row[0] is None else _BOT.load(connection, bot_row)
    return conversation


@functools.cache
def _lock_sql(alias: str, *, labelled: bool = False) -> str:
    """SELECT conversation, session.last_seen_at, bot ... FOR UPDATE OF the conversation.
    Parameters: tenant, conversation, session, site, visitor."""
    connection = connections[alias]
    quote = connection.ops.quote_name

    def column(model, name: str) -> str:
        return quote(model._meta.get_field(name).column)

    conversations, sessions, bots = (
        quote(model._meta.db_table) for model in (Conversation, WebChatSession, Bot)
    )
    selected = ", ".join(
        part.select(connection, labels=f"{part.alias}_" if labelled else "")
        for part in (_CONVERSATION, _SESSION, _BOT)
    )
    c_pk, b_pk, s_pk = (quote(m._meta.pk.column) for m in (Conversation, Bot, WebChatSession))
    sql = (
        f"SELECT {selected} FROM {conversations} c "  # noqa: S608 - identifiers only
        f"INNER JOIN {sessions} s ON s.{column(WebChatSession, 'conversation')} = c.{c_pk} "
        f"LEFT OUTER JOIN {bots} b ON b.{b_pk} = c.{column(Conversation, 'bot')} "
        f"WHERE c.{column(Conversation, 'tenant')} = %s AND c.{c_pk} = %s "
        f"AND s.{s_pk} = %s AND s.{column(WebChatSession, 'site')} = %s "
        f"AND s.{column(WebChatSession, 'visitor_id')} = %s"
    )
    if connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF c"
    elif connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return sql


@functools.cache
def _lock_and_insert_sql(alias: str) -> str:
    """PostgreSQL: the locking read as a CTE, the insert fed by its row (so it runs only for
    a live session, and only once the lock is held), and the locked row with the new
    message's id (NULL: a retry, nothing inserted). Parameters: the lock's, the insert's."""
    lock, insert = _lock_sql(alias, labelled=True), message_insert_sql(alias, source="locked")
    sql = f"WITH locked AS ({lock}), inserted AS ({insert}) "
    return sql + "SELECT locked.*, (SELECT * FROM inserted) FROM locked"  # noqa: S608
