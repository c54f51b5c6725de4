"""What the hot public routes cost: database queries and cache round trips (no timing).

Throughput itself is measured by `make bench`; these budgets keep the per-request work
from creeping back: config is served from the cache alone, a message is one insert plus
the conversation's locked read-modify-write.
"""

import pytest
from django.core.cache import caches
from redis.client import Redis

from bots.models import FlowAction, FlowTrigger
from tests.factories.bots import FlowRuleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_commands(monkeypatch):
    """The commands this process sends to Redis from now on."""
    sent: list[str] = []
    real = Redis.execute_command

    def counted(self, *args, **kwargs):
        sent.append(str(args[0]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Redis, "execute_command", counted)
    return sent


def test_config_costs_no_query_and_three_cache_round_trips(
    widget_client, redis_commands, django_assert_num_queries
):
    assert caches["default"].__class__.__module__ == "core.cache"
    widget_client.config()  # warms the site snapshot and the rollout decision
    redis_commands.clear()
    with django_assert_num_queries(0):
        response = widget_client.config()
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == widget_client.origin
    # site snapshot, rollout decision (with its generation), every rate limit at once;
    # CORS asks nothing more: the site's own origin check already said yes
    assert redis_commands == ["GET", "MGET", "EVAL"]


def test_message_answered_by_a_flow_costs_one_insert_and_the_locked_update(
    widget_client, bot, redis_commands, django_assert_num_queries
):
    FlowRuleFactory(
        bot=bot,
        trigger=FlowTrigger.KEYWORD,
        pattern="opening hours",
        action=FlowAction.REPLY,
        reply_text="9 to 5, Monday to Friday.",
    )
    widget_client.init()
    widget_client.send("opening hours?")  # warms the bot's rules in this process
    redis_commands.clear()
    # session; BEGIN; savepoint + insert + release; conversation (+ bot) FOR UPDATE;
    # reply insert; conversation update; COMMIT. No rules, transcript or re-read query.
    with django_assert_num_queries(9):
        response = widget_client.send("what are your opening hours")
    assert response.status_code == 201
    body = response.json()
    assert [r["text"] for r in body["replies"]] == ["9 to 5, Monday to Friday."]
    assert body["pending_reply"] is False
    assert redis_commands == ["GET", "MGET", "EVAL"]


def test_junk_site_keys_cost_no_query_and_leave_nothing_in_the_cache(
    widget_client, redis_commands, django_assert_num_queries
):
    widget_client.config(site_key="nope")  # fills the CORS answer for this origin
    redis_commands.clear()
    for junk, status, code in [
        ("nope", 404, "unknown_site"),
        ("wk_bad key!", 404, "unknown_site"),
        ("<script>", 404, "unknown_site"),
        ("wk_" + "x" * 80, 400, "invalid_request"),  # longer than any key
    ]:
        with django_assert_num_queries(0):
            response = widget_client.config(site_key=junk)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert "SET" not in redis_commands  # no negative cache entry per junk key
    # a well-formed key that is no site is looked up once, then answered from the cache
    with django_assert_num_queries(1):
        assert widget_client.config(site_key="wk_" + "a" * 24).status_code == 404
    with django_assert_num_queries(0):
        assert widget_client.config(site_key="wk_" + "a" * 24).status_code == 404


def test_a_reply_stored_while_the_message_waited_for_the_lock_is_in_the_answer(
    widget_client, bot, monkeypatch
):
    """The widget moves its cursor past the answer's replies: a reply another transaction
    stored after this message's insert (the worker's AI reply to an earlier question) must
    be in the answer, or the next poll would skip it."""
    from bots import services as engine
    from crm.models import Conversation, Direction, Message, SenderType

    FlowRuleFactory(
        bot=bot,
        trigger=FlowTrigger.KEYWORD,
        pattern="hours",
        action=FlowAction.REPLY,
        reply_text="9 to 5.",
    )
    widget_client.init()
    real_lock = engine._conversation_lock_for

    def worker_answers_first(message):
        # what the AI task commits while this request waits for the conversation's row
        reply = Message.objects.create(
            tenant_id=message.tenant_id,
            conversation_id=message.conversation_id,
            direction=Direction.OUTBOUND,
            sender_type=SenderType.BOT,
            text="The answer to the earlier question",
            metadata={},
        )
        Conversation.objects.filter(pk=message.conversation_id).update(
            last_message_at=reply.created_at
        )
        return real_lock(message)

    monkeypatch.setattr(engine, "_conversation_lock_for", worker_answers_first)
    body = widget_client.send("what are your hours").json()
    assert [r["text"] for r in body["replies"]] == [
        "The answer to the earlier question",
        "9 to 5.",
    ]
    cursor = max(r["id"] for r in body["replies"])
    assert widget_client.poll(after=cursor).json()["messages"] == []
