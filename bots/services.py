"""The conversation engine: flows first, then an AI reply computed in a Celery task.

Every write to a conversation's engine state (status, `bot_state`, `pending_reply_since`)
happens with the conversation row locked (`select_for_update`), so the API, the AI task
and the overdue safety net can race without losing or doubling a reply.

`bot_state` keys: `awaiting` ("email" while collecting an email), `flow_rule_id` (the
collect-email rule), `reasked` (the one re-ask was spent), `ai_waiting` (ids of inbound
messages an AI reply is still owed for: the latest `AI_WAITING_MAX`), `handoff_reason`,
`visitor_spoke` (a visitor message was handled before: the next one is not a first
message).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog
from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.utils import timezone

from bots import flows, metrics
from bots.engines import (
    EngineReply,
    EngineTimeout,
    call_with_deadline,
    engine_for_bot,
    fallback_reply,
)
from bots.models import Bot, FlowAction, FlowRule, FlowTrigger, KnowledgeArticle
from bots.retrieval import is_handoff_request
from bots.selectors import flow_rule_get, flow_rule_list_active, message_is_first_from_visitor
from core.exceptions import InvalidRequest
from core.rows import insert, update_fields
from core.tasks import enqueue
from crm.models import Contact, Conversation, ConversationStatus, Direction, Message, SenderType
from crm.selectors import contact_shared
from support.services import handoff_mirror_schedule
from tenants.models import Tenant
from webchat import metrics as webchat_metrics

log = structlog.get_logger(__name__)

# The safety net answers once a reply is this much later than the bot's own timeout.
OVERDUE_GRACE_SECONDS = 5
# A conversation owes AI replies to at most this many of its latest visitor messages: when
# the worker falls behind, a visitor who keeps writing gets answers to what they asked
# last, not a flood of stale ones, and the state saved on every message stays small.
AI_WAITING_MAX = 10
# What a visitor of a site with no bot is told after their message (people answer it).
NO_BOT_TEXT = "Thanks for your message! A member of our team will reply here."
DEFAULT_EMAIL_QUESTION = "What's your email address? We'll get back to you there."
DEFAULT_EMAIL_THANKS = "Thanks! We'll be in touch at {email}."
EMAIL_REASK = (
    "Hmm, that doesn't look like an email address. Could you type it like name@example.com?"
)

# Conversation fields the engine reads and writes (reloaded under the row lock).
_STATE_FIELDS = (
    "status",
    "bot_state",
    "pending_reply_since",
    "handed_off_at",
    "last_message_at",
    "contact_id",
)


@dataclass
class InboundResult:
    replies: list[Message]  # outbound bot messages stored synchronously, oldest first
    pending: bool  # True when an AI reply was scheduled for this message
    reply_owed: bool = False  # an AI reply is still owed here (for this or an earlier one)


# --- conversation state helpers --------------------------------------------------------


def _conversation_lock(conversation: Conversation, *, with_bot: bool = False) -> None:
    """Lock the row for the current transaction and reload the engine state from it
    (and, with `with_bot`, its bot, read fresh in the same query)."""
    rows = Conversation.objects.select_for_update(of=("self",))
    if with_bot:
        rows = rows.select_related("bot")
    locked = rows.get(tenant_id=conversation.tenant_id, pk=conversation.pk)
    for name in _STATE_FIELDS:
        setattr(conversation, name, getattr(locked, name))
    if with_bot:
        conversation.bot = locked.bot


def _conversation_lock_for(message: Message) -> Conversation:
    """The message's conversation, locked, its state and bot fresh. When the caller has
    not loaded it, the lock query loads it (one query, not two)."""
    if Message.conversation.is_cached(message):
        conversation = message.conversation
        _conversation_lock(conversation, with_bot=True)
        return conversation
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("bot")
        .get(tenant_id=message.tenant_id, pk=message.conversation_id)
    )
    message.conversation = conversation
    return conversation


def _conversation_save(conversation: Conversation) -> None:
    """Write the engine state back: one UPDATE written once (`core.rows`), as
    `save(update_fields=...)` would send; it runs on every visitor message."""
    update_fields(
        connections[router.db_for_write(Conversation)],
        conversation,
        [*_STATE_FIELDS, "updated_at"],
    )


def _ai_waiting(conversation: Conversation) -> list[int]:
    return list((conversation.bot_state or {}).get("ai_waiting", []))


def _ai_waiting_done(conversation: Conversation, message_id: int | None = None) -> None:
    """Forget one owed AI reply (all of them when `message_id` is None)."""
    waiting = (
        [] if message_id is None else [i for i in _ai_waiting(conversation) if i != message_id]
    )
    state = {**(conversation.bot_state or {}), "ai_waiting": waiting}
    if not waiting:
        conversation.pending_reply_since = None
        state.pop("ai_dropping", None)  # the backlog drained: the next one is logged
    conversation.bot_state = state


def _reply_metadata(
    *,
    outcome: str,
    confidence: float | None = None,
    article_ids: list | None = None,
    quick_replies: list[dict[str, str]] | None = None,
    flow_rule_id: int | None = None,
    latency_ms: int = 0,
    reply_to: int | None = None,
) -> dict:
    return {
        "ai_outcome": outcome,
        "confidence": None if confidence is None else round(float(confidence), 4),
        "article_ids": list(article_ids or []),
        "quick_replies": list(quick_replies or []),
        "flow_rule_id": flow_rule_id,
        "latency_ms": int(latency_ms),
        "reply_to": reply_to,
    }


def _bot_message_store(*, conversation: Conversation, text: str, metadata: dict) -> Message:
    """Store a bot reply (one INSERT written once: flow replies are stored inside the
    visitor-message route)."""
    message = Message(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        direction=Direction.OUTBOUND,
        sender_type=SenderType.BOT,
        text=text,
        metadata=metadata,
    )
    insert(connections[router.db_for_write(Message)], message)
    conversation.last_message_at = message.created_at
    webchat_metrics.outbound_stored(conversation)
    return message


def _engine_reply_store(
    *, conversation: Conversation, reply: EngineReply, reply_to: int | None
) -> Message:
    return _bot_message_store(
        conversation=conversation,
        text=reply.text,
        metadata=_reply_metadata(
            outcome=reply.outcome,
            confidence=reply.confidence,
            article_ids=reply.article_ids,
            quick_replies=reply.quick_replies,
            latency_ms=reply.latency_ms,
            reply_to=reply_to,
        ),
    )


# What the bot is in the middle of: an email it asked for (and its rule, its re-ask).
_FLOW_STATE = ("awaiting", "flow_rule_id", "reasked")


def _without_flow_state(conversation: Conversation) -> dict:
    """The conversation's bot state without what the bot is in the middle of."""
    return {k: v for k, v in (conversation.bot_state or {}).items() if k not in _FLOW_STATE}


@transaction.atomic
def conversation_handoff(*, conversation: Conversation, reason: str) -> Conversation:
    """Hand the conversation to humans: the bot stops answering and owes nothing more.

    The one place a conversation becomes `handoff` (mirroring to Chatwoot hooks in here).
    Idempotent. Callers holding unsaved engine state must save it first.
    """
    _conversation_lock(conversation)
    if conversation.status == ConversationStatus.HANDOFF:
        return conversation
    conversation.status = ConversationStatus.HANDOFF
    conversation.handed_off_at = timezone.now()
    conversation.bot_state = {**_without_flow_state(conversation), "handoff_reason": reason}
    _ai_waiting_done(conversation)
    _conversation_save(conversation)
    log.info(
        "conversation.handoff",
        tenant_id=conversation.tenant_id,
        conversation_id=conversation.pk,
        reason=reason,
    )
    handoff_mirror_schedule(conversation=conversation)  # mirror into Chatwoot on commit
    return conversation


def conversation_status_set(
    *, conversation: Conversation, status: str, reason: str = "staff"
) -> Conversation:
    """A person sets the status (staff in the dashboard, an agent in Chatwoot). Handing
    off goes through `conversation_handoff` (mirrored to Chatwoot, nothing owed); any
    change ends what the bot was in the middle of, so the visitor's next message is not
    taken for an email it asked for, and no AI reply is still owed."""
    from crm.services import conversation_set_status

    if status == ConversationStatus.HANDOFF:
        return conversation_handoff(conversation=conversation, reason=reason)
    with transaction.atomic():
        conversation = conversation_set_status(conversation=conversation, status=status)
        conversation.bot_state = _without_flow_state(conversation)
        _ai_waiting_done(conversation)
        conversation.save(update_fields=["bot_state", "pending_reply_since", "updated_at"])
    return conversation


# --- inbound: flows first --------------------------------------------------------------


@dataclass
class _Turn:
    """One visitor message being handled, and the replies stored for it."""

    message: Message
    conversation: Conversation
    bot: Bot
    replies: list[Message] = field(default_factory=list)
    pending: bool = False
    first_from_visitor: bool = False

    @property
    def text(self) -> str:
        return self.message.text or ""

    def reply(
        self,
        text: str,
        *,
        outcome: str = "flow",
        rule_id: int | None = None,
        quick_replies: list[dict[str, str]] | None = None,
    ) -> Message:
        message = _bot_message_store(
            conversation=self.conversation,
            text=text,
            metadata=_reply_metadata(
                outcome=outcome,
                quick_replies=quick_replies,
                flow_rule_id=rule_id,
                reply_to=self.message.pk,
            ),
        )
        self.replies.append(message)
        return message

    def handoff(self, text: str, *, reason: str, rule_id: int | None = None) -> None:
        self.reply(text, outcome="handoff", rule_id=rule_id)
        _conversation_save(self.conversation)
        conversation_handoff(conversation=self.conversation, reason=reason)


def inbound_handle(*, message: Message, locked: Conversation | None = None) -> InboundResult:
    """Answer a new inbound visitor message: awaited email, flow rules, handoff, else AI.

    Called inside the caller's transaction right after the message was stored, with its
    conversation either `locked` already (row lock held, bot loaded: the webchat API takes
    it before the insert) or locked here. Flow replies are stored at once; an AI reply is
    scheduled on commit (`pending`). Nothing is replied while the conversation is handed
    off; a resolved one is reopened.
    """
    # Joins the caller's transaction: a failure here must undo the stored message too.
    with transaction.atomic(savepoint=False):
        if locked is not None:
            conversation = message.conversation = locked
        else:
            conversation = _conversation_lock_for(message)
        bot = conversation.bot
        turn = _Turn(message=message, conversation=conversation, bot=bot)
        turn.first_from_visitor = _first_from_visitor(turn)
        if bot is not None and conversation.status != ConversationStatus.HANDOFF:
            if conversation.status == ConversationStatus.RESOLVED:
                conversation.status = ConversationStatus.OPEN
            handled = _email_answer(turn) or _flows_run(turn) or _human_requested(turn)
            if not handled:
                _ai_reply_schedule(turn)
        elif (
            bot is None
            and conversation.channel == "web"
            and conversation.status != ConversationStatus.HANDOFF
        ):
            # No bot answers this site: people do. The visitor hears so, and the
            # conversation waits for them (mirrored to Chatwoot when connected).
            turn.handoff(NO_BOT_TEXT, reason="no_bot")
        if not turn.replies:
            conversation.last_message_at = message.created_at or timezone.now()
        _conversation_save(conversation)
    return InboundResult(
        replies=turn.replies,
        pending=turn.pending,
        reply_owed=conversation.pending_reply_since is not None,
    )


def _flows_run(turn: _Turn) -> bool:
    """Fire the first matching rule. A greeting to a first message that also asks
    something ("hi, where is my order?") is followed by normal handling of the question."""
    rules = flow_rule_list_active(bot=turn.bot)
    if (turn.conversation.bot_state or {}).get("email_declined"):
        rules = [rule for rule in rules if rule.action != FlowAction.COLLECT_EMAIL]
    if not rules:
        return False
    first = turn.first_from_visitor
    rule = flows.first_match(rules, turn.text, first_message=first)
    if rule is None:
        return False
    _flow_apply(turn, rule)
    if (
        rule.trigger == FlowTrigger.GREETING
        and rule.action in (FlowAction.REPLY, FlowAction.QUICK_REPLIES)
        and not flows.is_salutation(turn.text)
    ):
        rule = flows.first_match(rules, turn.text, first_message=first, skip=[FlowTrigger.GREETING])
        if rule is None:
            return False
        _flow_apply(turn, rule)
    return True


def bot_state_new() -> dict:
    """The engine state of a conversation created for a visitor who has not written yet."""
    return {"visitor_spoke": False}


def _first_from_visitor(turn: _Turn) -> bool:
    """Is this the visitor's first message here? `bot_state["visitor_spoke"]` remembers that
    one came before (set now, saved with the turn). New web conversations start with it
    False; others (from before the flag, other channels) ask the transcript once."""
    state = turn.conversation.bot_state or {}
    spoke = state.get("visitor_spoke")
    if spoke:
        return False
    first = spoke is False or message_is_first_from_visitor(message=turn.message)
    turn.conversation.bot_state = {**state, "visitor_spoke": True}
    return first


def _flow_apply(turn: _Turn, rule: FlowRule) -> None:
    if rule.action == FlowAction.HANDOFF:
        turn.handoff(
            rule.reply_text or turn.bot.handoff_text, reason=f"flow_rule:{rule.pk}", rule_id=rule.pk
        )
    elif rule.action == FlowAction.COLLECT_EMAIL:
        turn.reply(rule.reply_text or DEFAULT_EMAIL_QUESTION, rule_id=rule.pk)
        turn.conversation.bot_state = {
            **(turn.conversation.bot_state or {}),
            "awaiting": "email",
            "flow_rule_id": rule.pk,
            "reasked": False,
        }
    elif rule.action == FlowAction.QUICK_REPLIES:
        turn.reply(rule.reply_text, rule_id=rule.pk, quick_replies=rule.quick_replies)
    else:
        turn.reply(rule.reply_text, rule_id=rule.pk)


def _email_answer(turn: _Turn) -> bool:
    """While an email is awaited: store it and thank, or re-ask once, then let go."""
    conversation = turn.conversation
    state = dict(conversation.bot_state or {})
    if state.get("awaiting") != "email":
        return False
    rule = None
    if isinstance(state.get("flow_rule_id"), int):
        rule = flow_rule_get(tenant_id=conversation.tenant_id, rule_id=state["flow_rule_id"])
    rule_id = rule.pk if rule else None
    email = flows.find_email(turn.text)
    if email is None and not state.get("reasked") and not is_handoff_request(turn.text):
        conversation.bot_state = {**state, "reasked": True}
        turn.reply(EMAIL_REASK, rule_id=rule_id)
        return True
    state = _without_flow_state(conversation)
    if email is None:
        # The re-ask was spent (or they asked for a person): carry on normally, and do not
        # ask again in this conversation ("no, I won't give my email" holds the keyword).
        conversation.bot_state = {**state, "email_declined": True}
        return False
    conversation.bot_state = state
    _contact_set_email(conversation=conversation, email=email)
    thanks = rule.follow_up_text if rule and rule.follow_up_text else DEFAULT_EMAIL_THANKS
    turn.reply(thanks.replace("{email}", email), rule_id=rule_id)
    return True


def _contact_set_email(*, conversation: Conversation, email: str) -> None:
    """Record the email the visitor gave on the conversation's contact, or on a new one.

    An email typed in a chat proves nothing, so no other contact is ever looked up by it.
    The conversation's contact may be a returning visitor's, shared with their earlier
    conversations: when it has another email, the visitor may be someone else on that
    browser, so this conversation gets a contact of its own. A verified contact (signed in
    on the host page) always takes the email; an anonymized one is not reused.
    """
    contact = conversation.contact
    usable = (
        contact is not None
        and contact.tenant_id == conversation.tenant_id
        and contact.anonymized_at is None
    )
    if usable and contact.email.lower() == email.lower():
        contact.save(update_fields=["updated_at"])  # the same email again: kept as stored
    elif usable and (
        contact.external_id
        or not contact.email
        or not contact_shared(contact=contact, conversation=conversation)
    ):
        contact.email = email
        contact.save(update_fields=["email", "updated_at"])
    else:
        conversation.contact = Contact.objects.create(tenant_id=conversation.tenant_id, email=email)


def _human_requested(turn: _Turn) -> bool:
    if not is_handoff_request(turn.text):
        return False
    turn.handoff(turn.bot.handoff_text, reason="visitor_request")
    return True


def _ai_reply_schedule(turn: _Turn) -> None:
    from bots.tasks import ai_reply  # the task module imports this one

    conversation = turn.conversation
    message_id = turn.message.pk
    owed = [*_ai_waiting(conversation), message_id]
    state = dict(conversation.bot_state or {})
    if len(owed) > AI_WAITING_MAX:
        # the oldest beyond the cap are dropped: their queued tasks find nothing owed.
        # Each drop is counted; the log tells once per backlog (until it drains), not
        # once per message of a visitor writing on while no worker keeps up.
        dropped = owed[:-AI_WAITING_MAX]
        metrics.AI_REPLIES_DROPPED.inc(len(dropped))
        if not state.get("ai_dropping"):
            state["ai_dropping"] = True
            log.warning(
                "ai_reply.owed_dropped",
                tenant_id=conversation.tenant_id,
                conversation_id=conversation.pk,
                message_ids=dropped,
            )
    state["ai_waiting"] = owed[-AI_WAITING_MAX:]
    conversation.bot_state = state
    conversation.pending_reply_since = timezone.now()
    turn.pending = True
    transaction.on_commit(lambda: enqueue(ai_reply, {"message_id": message_id}))


# --- AI replies ------------------------------------------------------------------------


def answer_question(*, bot: Bot, question: str, seconds: float | None = None) -> EngineReply:
    """The bot's answer to one question, never slower than `seconds` (default: the bot's
    `ai_timeout_seconds`; plus loading the knowledge index). Outcomes: answered, fallback
    (not confident), handoff (asked for a person), timeout, error; all but answered/handoff
    carry the bot's fallback copy and a handoff offer. Writes nothing."""
    started = time.monotonic()
    seconds = float(bot.ai_timeout_seconds) if seconds is None else seconds
    if is_handoff_request(question):
        reply = EngineReply(text=bot.handoff_text, confidence=None, outcome="handoff")
    elif seconds <= 0:
        reply = fallback_reply(bot, outcome="timeout")
    else:
        reply = _engine_answer(bot=bot, question=question, seconds=seconds)
    return replace(reply, latency_ms=int((time.monotonic() - started) * 1000))


def _engine_answer(*, bot: Bot, question: str, seconds: float) -> EngineReply:
    try:
        engine = engine_for_bot(bot)
        reply = call_with_deadline(lambda: engine.answer(question), seconds=seconds)
    except EngineTimeout as exc:
        log.warning("ai_reply.timeout", tenant_id=bot.tenant_id, bot_id=bot.pk, error=str(exc))
        return fallback_reply(bot, outcome="timeout")
    except DatabaseError:
        raise  # the task retries these
    except Exception:
        log.exception("ai_reply.engine_error", tenant_id=bot.tenant_id, bot_id=bot.pk)
        return fallback_reply(bot, outcome="error")
    if reply.outcome != "answered":
        return fallback_reply(bot, outcome="fallback", confidence=reply.confidence)
    return reply


def ai_reply_deliver(*, message: Message) -> Message | None:
    """Compute and store the AI reply owed for `message` (the `ai_reply` task's body).

    The engine runs outside any transaction; the reply is stored only if it is still
    owed (not already given by the safety net or a retry, not handed off meanwhile).
    """
    conversation = message.conversation
    bot = conversation.bot
    if bot is None or message.pk not in _ai_waiting(conversation):
        return None
    # The visitor's timeout runs from their message, not from when a worker got to it:
    # time in the queue comes off the engine's budget (none left: the fallback at once).
    waited = (timezone.now() - message.created_at).total_seconds() if message.created_at else 0
    reply = answer_question(
        bot=bot, question=message.text, seconds=float(bot.ai_timeout_seconds) - max(0.0, waited)
    )
    with transaction.atomic():
        _conversation_lock(conversation)
        if message.pk not in _ai_waiting(conversation):
            return None
        if conversation.status != ConversationStatus.OPEN:
            _ai_waiting_done(conversation, message.pk)
            _conversation_save(conversation)
            return None
        stored = _engine_reply_store(conversation=conversation, reply=reply, reply_to=message.pk)
        _ai_waiting_done(conversation, message.pk)
        _conversation_save(conversation)
        if reply.outcome == "handoff":
            conversation_handoff(conversation=conversation, reason="visitor_request")
    metrics.ai_reply_observe(outcome=reply.outcome, engine=bot.engine, latency_ms=reply.latency_ms)
    return stored


def _is_overdue(conversation: Conversation, bot: Bot) -> bool:
    since = conversation.pending_reply_since
    if since is None:
        return False
    waited = (timezone.now() - since).total_seconds()
    return waited > bot.ai_timeout_seconds + OVERDUE_GRACE_SECONDS


def reply_overdue_resolve(*, conversation: Conversation) -> Message | None:
    """Deliver the fallback (outcome `timeout`) once when an AI reply is overdue.

    Overdue: `pending_reply_since` is older than the bot's timeout + 5 s (worker down or
    stuck). Safe to call on every poll: a cheap check first, then a locked re-check, so
    concurrent callers store at most one fallback.
    """
    bot = conversation.bot or Bot(tenant_id=conversation.tenant_id)
    if not _is_overdue(conversation, bot):
        return None
    with transaction.atomic():
        _conversation_lock(conversation)
        if not _is_overdue(conversation, bot):
            return None
        if conversation.status != ConversationStatus.OPEN:
            _ai_waiting_done(conversation)  # humans answer now: owe nothing
            _conversation_save(conversation)
            return None
        waiting = _ai_waiting(conversation)
        waited_ms = int((timezone.now() - conversation.pending_reply_since).total_seconds() * 1000)
        reply = replace(fallback_reply(bot, outcome="timeout"), latency_ms=waited_ms)
        stored = _engine_reply_store(
            conversation=conversation, reply=reply, reply_to=max(waiting) if waiting else None
        )
        _ai_waiting_done(conversation)
        _conversation_save(conversation)
    log.warning(
        "ai_reply.overdue_fallback",
        tenant_id=conversation.tenant_id,
        conversation_id=conversation.pk,
        waited_ms=waited_ms,
    )
    metrics.ai_reply_observe(outcome="timeout", engine=bot.engine, latency_ms=waited_ms)
    return stored


# --- knowledge import ------------------------------------------------------------------

TITLE_MAX_CHARS = KnowledgeArticle._meta.get_field("title").max_length
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$")
_TAGS_LINE = re.compile(r"^tags\s*:(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class ArticleInput:
    title: str
    body: str
    tags: tuple[str, ...] = ()
    published: bool | None = None  # None: new articles are published, existing keep theirs


@dataclass(frozen=True)
class ImportCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def _tags_clean(raw: object, *, where: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = raw.strip().strip("[]").split(",")
    if not isinstance(raw, list | tuple) or not all(isinstance(t, str) for t in raw):
        raise InvalidRequest(f"{where}: tags must be a list of strings.")
    tags = [" ".join(t.strip().strip("\"'").split()) for t in raw]
    return tuple(dict.fromkeys(t for t in tags if t))


def _storable(text: str) -> bool:
    """PostgreSQL stores no NUL character, UTF-8 no unpaired surrogate (JSON's "\\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _article_input(
    *, title: object, body: object, tags: object, published: object, where: str
) -> ArticleInput:
    if not isinstance(title, str) or not title.strip():
        raise InvalidRequest(f"{where}: a non-empty title is required.")
    title = " ".join(title.split())
    if len(title) > TITLE_MAX_CHARS:
        raise InvalidRequest(f"{where}: the title is longer than {TITLE_MAX_CHARS} characters.")
    if not isinstance(body, str) or not body.strip():
        raise InvalidRequest(f"{where}: a non-empty body is required.")
    if published is not None and not isinstance(published, bool):
        raise InvalidRequest(f"{where}: published must be true or false.")
    article = ArticleInput(
        title=title,
        body=body.strip(),
        tags=_tags_clean(tags if tags is not None else [], where=where),
        published=published,
    )
    for name, verb, texts in (
        ("title", "holds", [article.title]),
        ("body", "holds", [article.body]),
        ("tags", "hold", article.tags),
    ):
        if not all(_storable(text) for text in texts):
            raise InvalidRequest(
                f"{where}: {name} {verb} a character that cannot be stored (NUL, or an "
                "unpaired surrogate such as \\ud800)."
            )
    return article


def knowledge_articles_from_json(text: str, *, source: str) -> list[ArticleInput]:
    """A JSON list of {title, body, tags?, published?} objects."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"{source} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from exc
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        reason = str(exc).split(";")[0]
        raise InvalidRequest(f"{source} cannot be read as JSON: {reason}.") from exc
    except RecursionError as exc:
        raise InvalidRequest(f"{source} is nested too deeply to be a list of articles.") from exc
    if not isinstance(data, list):
        raise InvalidRequest(f"{source} must hold a JSON list of {{title, body, tags}} objects.")
    articles = []
    for number, item in enumerate(data, start=1):
        where = f"{source}, item {number}"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where}: expected an object with title, body and tags.")
        articles.append(
            _article_input(
                title=item.get("title"),
                body=item.get("body"),
                tags=item.get("tags"),
                published=item.get("published"),
                where=where,
            )
        )
    return articles


def knowledge_article_from_markdown(text: str, *, source: str) -> ArticleInput:
    """The first `# heading` is the title; an optional `tags: a, b` line (or a `---`
    front-matter block with one) before the heading or right after it gives the tags."""
    lines = text.splitlines()
    tags: object = []
    start = 0
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is None:
            raise InvalidRequest(f"{source}: the front matter opened with --- is never closed.")
        for line in lines[1:end]:
            if match := _TAGS_LINE.match(line.strip()):
                tags = match.group(1)
        start = end + 1
    heading = None
    for i in range(start, len(lines)):
        line = lines[i].strip()
        if match := _HEADING.match(line):
            heading = i
            break
        if match := _TAGS_LINE.match(line):
            tags = match.group(1)
        elif line:
            raise InvalidRequest(f"{source}, line {i + 1}: text before the first # heading.")
    if heading is None:
        raise InvalidRequest(f"{source}: no '# Title' heading found.")
    body = lines[heading + 1 :]
    first = next((i for i, line in enumerate(body) if line.strip()), None)
    if first is not None and (match := _TAGS_LINE.match(body[first].strip())):
        tags = match.group(1)
        body = body[first + 1 :]
    title = _HEADING.match(lines[heading].strip()).group(1)
    return _article_input(
        title=title, body="\n".join(body), tags=tags, published=None, where=source
    )


# About 1,600 articles of the longest body allowed. Past it, a file is a dump to split; and
# a device given by mistake (/dev/zero) is never read until memory runs out.
IMPORT_FILE_MAX_BYTES = 32 * 1024 * 1024


def _read_text(path: Path) -> str:
    try:
        if not path.is_file():
            raise InvalidRequest(f"{path} is not a regular file.")
        if (size := path.stat().st_size) > IMPORT_FILE_MAX_BYTES:
            raise InvalidRequest(
                f"{path} is {size:,} bytes: an import file is at most "
                f"{IMPORT_FILE_MAX_BYTES:,} bytes; split it."
            )
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{path} is not UTF-8 text.") from exc
    except OSError as exc:
        raise InvalidRequest(f"Cannot read {path}: {exc.strerror}.") from exc


def knowledge_articles_from_path(path: Path) -> list[ArticleInput]:
    """Articles from a JSON file, a Markdown file or a folder of Markdown files."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".md", ".markdown"))
        if not files:
            raise InvalidRequest(f"{path} holds no Markdown (.md) files.")
        articles = [
            knowledge_article_from_markdown(_read_text(f), source=str(f.relative_to(path)))
            for f in files
        ]
    elif not path.exists():
        raise InvalidRequest(f"{path} does not exist.")
    elif path.suffix.lower() in (".md", ".markdown"):
        articles = [knowledge_article_from_markdown(_read_text(path), source=path.name)]
    else:
        articles = knowledge_articles_from_json(_read_text(path), source=path.name)
    titles = [a.title for a in articles]
    if duplicates := sorted({t for t in titles if titles.count(t) > 1}):
        raise InvalidRequest(f"{path}: the same title appears twice: {', '.join(duplicates)}.")
    return articles


# An article past this is a document, not an answer: split it (retrieval answers from
# paragraphs; one huge body also makes every index rebuild and search of the tenant slower).
ARTICLE_BODY_MAX_CHARS = 20_000


def article_body_error(body: str) -> str | None:
    if len(body) > ARTICLE_BODY_MAX_CHARS:
        return (
            f"An article is at most {ARTICLE_BODY_MAX_CHARS:,} characters ({len(body):,} "
            "here): split it into articles of one topic each."
        )
    return None


def knowledge_import(*, tenant: Tenant, articles: list[ArticleInput]) -> ImportCounts:
    """Create or update the tenant's articles by exact title; all or nothing. A title that
    another import (or an edit) creates after this one looked it up refuses the whole
    import: run it again (it then updates that article)."""
    try:
        return _knowledge_import(tenant=tenant, articles=articles)
    except IntegrityError as exc:  # article_unique_title: nothing of this import was kept
        raise InvalidRequest(
            "Another import or an edit created one of these titles meanwhile; run the import again."
        ) from exc


@transaction.atomic
def _knowledge_import(*, tenant: Tenant, articles: list[ArticleInput]) -> ImportCounts:
    for item in articles:
        error = article_body_error(item.body)
        if error:
            raise InvalidRequest(f"{item.title!r}: {error}")
    existing = {
        a.title: a
        for a in KnowledgeArticle.objects.select_for_update().filter(
            tenant=tenant, title__in=[item.title for item in articles]
        )
    }
    created = updated = unchanged = 0
    for item in articles:
        article = existing.get(item.title)
        if article is None:
            article = KnowledgeArticle.objects.create(
                tenant=tenant,
                title=item.title,
                body=item.body,
                tags=list(item.tags),
                published=True if item.published is None else item.published,
            )
            existing[item.title] = article
            created += 1
            continue
        wanted = {"body": item.body, "tags": list(item.tags)}
        if item.published is not None:
            wanted["published"] = item.published
        changed = [name for name, value in wanted.items() if getattr(article, name) != value]
        if not changed:
            unchanged += 1
            continue
        for name in changed:
            setattr(article, name, wanted[name])
        article.save(update_fields=[*changed, "updated_at"])
        updated += 1
    log.info(
        "knowledge.imported",
        tenant_id=tenant.pk,
        created=created,
        updated=updated,
        unchanged=unchanged,
    )
    return ImportCounts(created=created, updated=updated, unchanged=unchanged)
