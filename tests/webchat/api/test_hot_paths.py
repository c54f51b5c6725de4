"""What the hot public routes cost: database queries and cache round trips (no timing).

Throughput itself is measured by `make bench`; these budgets keep the per-request work
from creeping back: config is served from the cache alone, a message is one insert plus
the conversation's locked read-modify-write.
"""

import threading
import time

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
    # BEGIN; one statement locking the conversation (+ bot, + the session check) and
    # inserting the message ON CONFLICT DO NOTHING; reply insert; conversation update;
    # COMMIT. No session, rules, transcript or re-read query.
    with django_assert_num_queries(5):
        response = widget_client.send("what are your opening hours")
    assert response.status_code == 201
    body = response.json()
    assert [r["text"] for r in body["replies"]] == ["9 to 5, Monday to Friday."]
    assert body["pending_reply"] is False
    # the site snapshot, its rollout decision and every rate limit: one script
    assert redis_commands == ["EVAL"]


def test_a_token_from_before_the_tenant_claim_reads_the_rollout_decision_apart(
    widget_client, redis_commands
):
    from dataclasses import replace

    from webchat.tokens import session_token_issue, session_token_read

    widget_client.init()
    widget_client.poll()  # warms the site snapshot and the rollout decision
    old, _ = session_token_issue(replace(session_token_read(widget_client.token), tenant_id=None))
    redis_commands.clear()
    response = widget_client.poll(token=old)
    assert response.status_code == 200, response.content
    assert redis_commands == ["EVAL", "MGET"]  # the rollout keys need the tenant's id


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


@pytest.mark.django_db(transaction=True)
def test_a_message_is_inserted_under_its_conversations_lock_so_ids_follow_commits(
    client, site, bot
):
    """The widget's poll cursor moves past what it was given: if a visitor message got its
    id before another writer's reply and was committed after it, a poll could see the reply,
    move past the message's id and never return it. The API takes the conversation's lock
    before it inserts, as every writer does, so a reply committed meanwhile has the lower id,
    and the next poll from the cursor returns it."""
    from django.db import connection, transaction

    from crm.models import Conversation, Direction, Message, SenderType
    from tests.widget_client import WidgetClient

    FlowRuleFactory(  # answered in the request: no eager AI task re-reads the replies
        bot=bot,
        trigger=FlowTrigger.KEYWORD,
        pattern="one more thing",
        action=FlowAction.REPLY,
        reply_text="Go ahead.",
    )
    visitor = WidgetClient(client, site.site_key)
    visitor.init()
    cursor = 0
    holding, release = threading.Event(), threading.Event()

    def worker_replies():  # the AI task: lock; store its reply once the POST is under way
        try:
            with transaction.atomic():
                conversation = Conversation.objects.select_for_update().get(
                    pk=visitor.conversation_id
                )
                holding.set()
                release.wait(10)
                stored = Message.objects.create(
                    tenant_id=conversation.tenant_id,
                    conversation=conversation,
                    direction=Direction.OUTBOUND,
                    sender_type=SenderType.BOT,
                    text="The answer to the earlier question",
                    metadata={},
                )
                conversation.last_message_at = stored.created_at  # as every writer does
                conversation.save(update_fields=["last_message_at"])
        finally:
            connection.close()

    worker = threading.Thread(target=worker_replies)
    worker.start()
    assert holding.wait(10)

    def release_once_the_post_waits():  # stores and commits while the POST waits
        from django.db import connection as own

        try:
            for _ in range(200):
                with own.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                    if cursor.fetchone()[0]:
                        break
                time.sleep(0.02)
        finally:
            release.set()
            own.close()

    threading.Thread(target=release_once_the_post_waits).start()
    body = visitor.send("and one more thing").json()
    worker.join(10)
    reply = Message.objects.get(text="The answer to the earlier question")
    assert body["message"]["id"] > reply.pk
    # and it is in the answer, for clients whose cursor follows the POST answer
    assert [r["text"] for r in body["replies"]] == [reply.text, "Go ahead."]
    polled = visitor.poll(after=cursor).json()["messages"]
    assert [m["id"] for m in polled][:2] == [reply.pk, body["message"]["id"]]


def test_a_message_on_a_session_gone_or_moved_is_refused_and_not_stored(widget_client):
    """The session check rides on the lock query; its refusals are the ones authentication
    gives elsewhere, and nothing is stored."""
    from crm.models import Conversation, Message
    from webchat.models import WebChatSession

    widget_client.init()
    session = WebChatSession.objects.get(conversation_id=widget_client.conversation_id)
    other = Conversation.objects.create(tenant_id=session.tenant_id, bot=session.conversation.bot)
    WebChatSession.objects.filter(pk=session.pk).update(conversation=other)
    response = widget_client.send("hello?")
    assert (response.status_code, response.json()["error"]["code"]) == (
        404,
        "conversation_not_found",
    )
    WebChatSession.objects.filter(pk=session.pk).delete()
    response = widget_client.send("hello?")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "token_invalid")
    assert not Message.objects.filter(text="hello?").exists()
