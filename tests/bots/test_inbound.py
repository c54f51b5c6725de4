"""inbound_handle: flows first (stored replies + metadata), handoff, collect email."""

import pytest

from bots.models import FlowAction, FlowTrigger
from bots.services import EMAIL_REASK, NO_BOT_TEXT, conversation_handoff
from crm.models import Contact, ConversationStatus, Direction, SenderType
from tests.bots.conftest import bot_replies
from tests.factories import BotFactory, ConversationFactory
from tests.factories.bots import FlowRuleFactory

pytestmark = pytest.mark.django_db

META_KEYS = {
    "ai_outcome",
    "confidence",
    "article_ids",
    "quick_replies",
    "flow_rule_id",
    "latency_ms",
}


def rule(bot, **kwargs):
    return FlowRuleFactory(bot=bot, **kwargs)


def test_keyword_reply_is_stored_with_flow_metadata(bot, conversation, say):
    pricing = rule(bot, pattern="price, pricing", reply_text="Plans start at $9.")
    _, result = say(conversation, "What's your PRICING?")
    assert result.pending is False
    [reply] = result.replies
    assert reply.direction == Direction.OUTBOUND and reply.sender_type == SenderType.BOT
    assert reply.text == "Plans start at $9."
    assert set(reply.metadata) >= META_KEYS
    assert reply.metadata["ai_outcome"] == "flow"
    assert reply.metadata["flow_rule_id"] == pricing.pk
    assert reply.metadata["quick_replies"] == []
    assert reply.metadata["confidence"] is None
    assert conversation.last_message_at == reply.created_at
    assert conversation.pending_reply_since is None
    assert bot_replies(conversation) == [reply]


def test_rules_run_in_position_order_and_inactive_ones_are_skipped(bot, conversation, say):
    rule(bot, position=0, pattern="price", reply_text="inactive", active=False)
    second = rule(bot, position=5, trigger=FlowTrigger.REGEX, pattern=r"pric", reply_text="B")
    rule(bot, position=1, pattern="price", reply_text="A")
    _, result = say(conversation, "price?")
    assert [r.text for r in result.replies] == ["A"]
    second.position = 0
    second.save()
    _, result = say(conversation, "price?")
    assert [r.text for r in result.replies] == ["B"]


def test_rules_of_another_bot_or_tenant_never_fire(tenant, conversation, say):
    same_tenant_other_bot = FlowRuleFactory(bot=BotFactory(tenant=tenant), pattern="price")
    other_tenant_rule = FlowRuleFactory(pattern="price")
    assert same_tenant_other_bot.bot_id != conversation.bot_id
    assert other_tenant_rule.tenant_id != conversation.tenant_id
    _, result = say(conversation, "price", commit=False)
    assert result.replies == [] and result.pending is True


def test_greeting_fires_on_the_first_visitor_message_only(bot, conversation, say):
    rule(bot, trigger=FlowTrigger.GREETING, pattern="", reply_text="Welcome!")
    _, first = say(conversation, "hello!")
    assert [r.text for r in first.replies] == ["Welcome!"] and first.pending is False
    _, second = say(conversation, "hello!", commit=False)
    assert second.replies == [] and second.pending is True


def test_greeting_to_a_real_question_also_answers_it(bot, conversation, say):
    rule(bot, position=0, trigger=FlowTrigger.GREETING, pattern="", reply_text="Welcome!")
    rule(bot, position=1, pattern="price", reply_text="Plans start at $9.")
    _, result = say(conversation, "hi, what's the price?")
    assert [r.text for r in result.replies] == ["Welcome!", "Plans start at $9."]
    other = ConversationFactory(tenant=conversation.tenant, bot=bot)
    _, result = say(other, "hi, do gift cards expire?", commit=False)
    assert [r.text for r in result.replies] == ["Welcome!"]
    assert result.pending is True  # the question itself goes on to the AI


def test_button_value_and_quick_replies_action(bot, conversation, say):
    buttons = [{"label": "Pro plan", "value": "plan_pro"}, {"label": "Team", "value": "plan_team"}]
    menu = rule(
        bot,
        pattern="plans",
        action=FlowAction.QUICK_REPLIES,
        reply_text="Which plan?",
        quick_replies=buttons,
    )
    pro = rule(bot, trigger=FlowTrigger.BUTTON, pattern="plan_pro", reply_text="Pro is $29.")
    _, result = say(conversation, "tell me about plans")
    [reply] = result.replies
    assert reply.metadata["quick_replies"] == buttons
    assert reply.metadata["flow_rule_id"] == menu.pk
    _, result = say(conversation, "plan_pro")
    assert [r.text for r in result.replies] == ["Pro is $29."]
    assert result.replies[0].metadata["flow_rule_id"] == pro.pk


def test_handoff_action_changes_status_and_stops_the_bot(bot, conversation, say):
    human = rule(bot, pattern="complaint", action=FlowAction.HANDOFF, reply_text="")
    _, result = say(conversation, "I have a complaint")
    [reply] = result.replies
    assert reply.text == bot.handoff_text
    assert reply.metadata["ai_outcome"] == "handoff"
    assert reply.metadata["flow_rule_id"] == human.pk
    assert conversation.status == ConversationStatus.HANDOFF
    assert conversation.handed_off_at is not None
    assert conversation.bot_state["handoff_reason"] == f"flow_rule:{human.pk}"
    # While handed off, humans answer: nothing from the bot, nothing pending.
    _, later = say(conversation, "complaint again, and what's the price?")
    assert later.replies == [] and later.pending is False
    assert len(bot_replies(conversation)) == 1


def test_visitor_asking_for_a_human_is_handed_off(bot, conversation, say):
    _, result = say(conversation, "can I talk to a real person please")
    [reply] = result.replies
    assert reply.metadata["ai_outcome"] == "handoff" and reply.text == bot.handoff_text
    assert conversation.status == ConversationStatus.HANDOFF
    assert conversation.bot_state["handoff_reason"] == "visitor_request"


def test_resolved_conversation_is_reopened(bot, say, tenant):
    conversation = ConversationFactory(tenant=tenant, bot=bot, status=ConversationStatus.RESOLVED)
    rule(bot, pattern="price", reply_text="$9")
    _, result = say(conversation, "price")
    assert conversation.status == ConversationStatus.OPEN
    assert [r.text for r in result.replies] == ["$9"]


def test_without_a_bot_the_visitor_is_told_people_will_answer(tenant, say):
    """A site with no bot is answered by people: the first message hands off (once)."""
    conversation = ConversationFactory(tenant=tenant, bot=None)
    message, result = say(conversation, "hello?")
    assert [r.text for r in result.replies] == [NO_BOT_TEXT] and result.pending is False
    assert conversation.status == ConversationStatus.HANDOFF
    assert conversation.bot_state["handoff_reason"] == "no_bot"
    _, again = say(conversation, "anyone there?")
    assert again.replies == []  # waiting for a person: no second notice
    conversation.refresh_from_db()
    assert conversation.last_message_at > message.created_at


def test_without_a_bot_other_channels_get_nothing_stored(tenant, say):
    conversation = ConversationFactory(tenant=tenant, bot=None, channel="telegram", channel_id="t")
    _, result = say(conversation, "hello?")
    assert result.replies == [] and conversation.status == ConversationStatus.OPEN


def test_conversation_handoff_is_idempotent(conversation):
    first = conversation_handoff(conversation=conversation, reason="agent")
    handed_off_at = first.handed_off_at
    again = conversation_handoff(conversation=conversation, reason="agent")
    assert again.status == ConversationStatus.HANDOFF
    assert again.handed_off_at == handed_off_at


# --- collect email -------------------------------------------------------------------------


@pytest.fixture
def collect(bot):
    return rule(
        bot,
        pattern="quote",
        action=FlowAction.COLLECT_EMAIL,
        reply_text="What's your email?",
        follow_up_text="Thanks, we'll write to {email}.",
    )


def test_collect_email_happy_path_creates_the_contact(conversation, say, collect):
    _, ask = say(conversation, "I'd like a quote")
    assert [r.text for r in ask.replies] == ["What's your email?"]
    assert conversation.bot_state["awaiting"] == "email"
    _, thanks = say(conversation, "sure: jane@example.com")
    assert [r.text for r in thanks.replies] == ["Thanks, we'll write to jane@example.com."]
    assert thanks.replies[0].metadata["flow_rule_id"] == collect.pk
    assert "awaiting" not in conversation.bot_state
    contact = conversation.contact
    assert contact.email == "jane@example.com" and contact.tenant_id == conversation.tenant_id


def test_collect_email_updates_an_existing_contact(tenant, bot, say, collect):
    contact = Contact.objects.create(tenant=tenant, name="Jane")
    conversation = ConversationFactory(tenant=tenant, bot=bot, contact=contact)
    say(conversation, "quote please")
    say(conversation, "jane@example.com")
    contact.refresh_from_db()
    assert contact.email == "jane@example.com"
    assert Contact.objects.filter(tenant=tenant).count() == 1


def give_email(say, conversation, text):
    """Ask for a quote, answer the email question with `text`; the saved conversation."""
    say(conversation, "quote please")
    say(conversation, text)
    conversation.refresh_from_db()
    return conversation


def test_collect_email_never_joins_another_contact_by_its_email(
    tenant, bot, conversation, say, collect
):
    """A typed email proves nothing: it must not make the visitor someone else's contact."""
    janes = Contact.objects.create(tenant=tenant, name="Jane", email="jane@example.com")
    signed_in = Contact.objects.create(tenant=tenant, email="jane@example.com", external_id="u7")
    contact = give_email(say, conversation, "jane@example.com").contact
    assert contact.pk not in (janes.pk, signed_in.pk)
    assert (contact.email, contact.name, contact.external_id) == ("jane@example.com", "", "")
    janes.refresh_from_db()
    assert janes.name == "Jane"


def test_collect_email_on_a_contact_shared_with_an_earlier_chat_with_another_email(
    tenant, bot, say, collect
):
    """A returning visitor's contact has another email: maybe another person on that
    browser, so this conversation gets its own contact and the earlier one keeps its own."""
    earlier = Contact.objects.create(tenant=tenant, email="jane@example.com")
    ConversationFactory(tenant=tenant, bot=bot, contact=earlier)
    conversation = ConversationFactory(tenant=tenant, bot=bot, contact=earlier)
    contact = give_email(say, conversation, "joe@example.com").contact
    assert contact.pk != earlier.pk and contact.email == "joe@example.com"
    earlier.refresh_from_db()
    assert earlier.email == "jane@example.com"


def test_collect_email_corrects_a_contact_only_this_conversation_has(tenant, bot, say, collect):
    own = Contact.objects.create(tenant=tenant, email="jane@exmaple.com")  # a typo
    conversation = ConversationFactory(tenant=tenant, bot=bot, contact=own)
    assert give_email(say, conversation, "jane@example.com").contact_id == own.pk
    own.refresh_from_db()
    assert own.email == "jane@example.com"


@pytest.mark.parametrize(
    "stored, external_id, kept",
    [
        ("Jane@Example.com", "", "Jane@Example.com"),  # the same email again: kept as stored
        ("old@example.com", "u9", "jane@example.com"),  # signed in: theirs, whatever it held
    ],
    ids=["same-email", "verified"],
)
def test_collect_email_on_a_shared_contact_that_stays_with_the_conversation(
    tenant, bot, say, collect, stored, external_id, kept
):
    contact = Contact.objects.create(tenant=tenant, email=stored, external_id=external_id)
    ConversationFactory(tenant=tenant, bot=bot, contact=contact)  # an earlier chat shares it
    conversation = ConversationFactory(tenant=tenant, bot=bot, contact=contact)
    assert give_email(say, conversation, "jane@example.com").contact_id == contact.pk
    contact.refresh_from_db()
    assert contact.email == kept


def test_collect_email_on_an_anonymized_contact_makes_a_new_one(tenant, bot, say, collect):
    gone = Contact.objects.create(tenant=tenant, anonymized_at="2026-01-01T00:00Z")
    conversation = ConversationFactory(tenant=tenant, bot=bot, contact=gone)
    contact = give_email(say, conversation, "jane@example.com").contact
    assert contact.pk != gone.pk and contact.anonymized_at is None
    gone.refresh_from_db()
    assert gone.email == ""  # retention's work is not undone


def test_collect_email_reasks_once_then_lets_go(conversation, say, collect):
    say(conversation, "quote")
    _, reask = say(conversation, "why do you need it?")
    assert [r.text for r in reask.replies] == [EMAIL_REASK]
    assert conversation.bot_state["awaiting"] == "email"
    _, normal = say(conversation, "no thanks", commit=False)
    assert normal.replies == [] and normal.pending is True  # normal handling (AI) again
    assert "awaiting" not in conversation.bot_state
    assert conversation.contact is None


def test_an_email_refused_is_not_asked_for_again_by_its_own_keyword(bot, conversation, say):
    """A collect-email rule on the keyword "email": every refusal holds the keyword."""
    rule(bot, pattern="email", action=FlowAction.COLLECT_EMAIL, reply_text="What's your email?")
    _, ask = say(conversation, "can you email me the details")
    assert [r.text for r in ask.replies] == ["What's your email?"]
    _, reask = say(conversation, "no email")
    assert [r.text for r in reask.replies] == [EMAIL_REASK]
    for refusal in ("I won't give my email", "stop asking for my email"):
        _, answer = say(conversation, refusal, commit=False)
        assert answer.replies == [] and answer.pending is True  # normal handling (AI)
        assert "awaiting" not in conversation.bot_state
    assert conversation.bot_state["email_declined"] is True


def test_a_staff_status_change_ends_the_email_the_bot_waited_for(
    tenant, bot, conversation, say, collect
):
    from bots.services import conversation_status_set

    say(conversation, "I'd like a quote")
    assert conversation.bot_state["awaiting"] == "email"
    conversation_status_set(conversation=conversation, status=ConversationStatus.HANDOFF)
    conversation.refresh_from_db()
    assert conversation.handed_off_at is not None and "awaiting" not in conversation.bot_state
    conversation_status_set(conversation=conversation, status=ConversationStatus.OPEN)
    _, answer = say(conversation, "what are your opening hours?", commit=False)
    assert EMAIL_REASK not in [r.text for r in answer.replies]
    assert answer.pending is True  # the question is answered, not taken for an email


def test_asking_for_a_human_while_awaiting_email_hands_off(conversation, say, collect):
    say(conversation, "quote")
    _, result = say(conversation, "just let me talk to a human")
    assert result.replies[0].metadata["ai_outcome"] == "handoff"
    assert conversation.status == ConversationStatus.HANDOFF
    assert "awaiting" not in conversation.bot_state


# --- hot path: rules kept in memory per bot version, first message known from the state ----


def _tables_read(queries) -> str:
    return " ".join(q["sql"] for q in queries)


def test_rules_are_read_once_per_version_and_edits_apply_to_the_next_message(
    bot, conversation, say
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    hours = rule(bot, position=5, pattern="hours", reply_text="9 to 5.")
    say(conversation, "hours?")  # warms the rules of this bot version
    with CaptureQueriesContext(connection) as queries:
        _, result = say(conversation, "hours?")
    assert [r.text for r in result.replies] == ["9 to 5."]
    assert '"bots_flowrule"' not in _tables_read(queries)

    hours.reply_text = "10 to 6."
    hours.save()  # bumps the bot's flow_rules_version
    _, result = say(conversation, "hours?")
    assert [r.text for r in result.replies] == ["10 to 6."]

    rule(bot, position=1, pattern="hours", reply_text="Closed today.")
    _, result = say(conversation, "hours?")
    assert [r.text for r in result.replies] == ["Closed today."]

    hours.delete()
    bot.flow_rules.filter(reply_text="Closed today.").get().delete()
    _, result = say(conversation, "hours?", commit=False)
    assert result.replies == [] and result.pending is True


def test_a_new_web_conversation_knows_its_first_message_without_reading_the_transcript(
    bot, tenant, say
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bots.services import bot_state_new

    rule(bot, trigger=FlowTrigger.GREETING, pattern="", reply_text="Welcome!")
    fresh = ConversationFactory(tenant=tenant, bot=bot, bot_state=bot_state_new())
    with CaptureQueriesContext(connection) as queries:
        _, first = say(fresh, "hello")
    assert [r.text for r in first.replies] == ["Welcome!"]
    assert 'FROM "crm_message"' not in _tables_read(queries)  # no "earlier message?" query
    assert fresh.bot_state["visitor_spoke"] is True
    _, second = say(fresh, "hello", commit=False)
    assert second.replies == [] and second.pending is True


def test_a_conversation_from_before_the_flag_asks_the_transcript_once(bot, conversation, say):
    rule(bot, trigger=FlowTrigger.GREETING, pattern="", reply_text="Welcome!")
    assert "visitor_spoke" not in conversation.bot_state
    _, first = say(conversation, "hello")
    assert [r.text for r in first.replies] == ["Welcome!"]
    assert conversation.bot_state["visitor_spoke"] is True


def test_a_flow_answer_while_an_earlier_ai_reply_is_owed_still_says_a_reply_is_coming(
    bot, conversation, say
):
    rule(bot, pattern="hours", reply_text="9 to 5.")
    _, asked = say(conversation, "do gift cards expire?", commit=False)  # AI reply queued
    assert asked.pending is True and asked.reply_owed is True
    _, answered = say(conversation, "hours?", commit=False)
    assert [r.text for r in answered.replies] == ["9 to 5."]
    assert answered.pending is False  # nothing new scheduled for this one
    assert answered.reply_owed is True  # but the first question's answer is still coming


def test_a_rule_moved_to_another_bot_stops_firing_for_the_first(bot, conversation, say, tenant):
    moved = rule(bot, pattern="hours", reply_text="9 to 5.")
    _, result = say(conversation, "hours?")
    assert [r.text for r in result.replies] == ["9 to 5."]  # cached for this bot version
    moved.bot = BotFactory(tenant=tenant)
    moved.save()
    _, result = say(conversation, "hours?", commit=False)
    assert result.replies == [] and result.pending is True


def test_saving_a_bot_loaded_before_a_rule_change_keeps_the_new_rules(bot, conversation, say):
    from bots.models import Bot

    hours = rule(bot, pattern="hours", reply_text="old")
    say(conversation, "hours?")
    stale = Bot.objects.get(pk=bot.pk)  # e.g. the settings form, loaded now
    hours.reply_text = "new"
    hours.save()
    stale.name = "Renamed"
    stale.save()  # must not write the older flow_rules_version back
    _, result = say(conversation, "hours?")
    assert [r.text for r in result.replies] == ["new"]
    assert Bot.objects.get(pk=bot.pk).name == "Renamed"
