"""core.tasks.enqueue: what it publishes is what apply_async publishes, and a real worker
consuming the Redis broker runs it (the deployed path of an AI reply, end to end)."""

import json
import time
import uuid

import pytest
import redis
from celery._state import _task_stack
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.db import connections

from bots.tasks import ai_reply
from config.celery import app
from core.tasks import enqueue
from crm.models import Message, SenderType

pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")


@pytest.fixture
def broker():
    return redis.Redis.from_url(settings.REDIS_URL)


@pytest.fixture
def queue(broker):
    name = f"replybase-test-tasks-{uuid.uuid4().hex[:8]}"
    yield name
    broker.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")


@pytest.fixture
def celery_conf():
    """Set Celery settings for one test; afterwards they read through to Django's again."""
    changed = []

    def set_(**values):
        changed.extend(values)
        app.conf.update(values)

    yield set_
    for key in changed:
        app.conf.changes.pop(key, None)


@pytest.fixture
def not_eager(celery_conf):
    celery_conf(task_always_eager=False)


def _published(broker, queue):
    return [json.loads(raw) for raw in broker.lrange(queue, 0, -1)]


def test_enqueue_publishes_what_apply_async_publishes(broker, queue, not_eager):
    ours = enqueue(ai_reply, {"message_id": 41}, queue=queue)
    (mine,) = _published(broker, queue)
    broker.delete(queue)
    theirs = ai_reply.apply_async(kwargs={"message_id": 41}, queue=queue).id
    (reference,) = _published(broker, queue)
    assert mine["headers"]["id"] == ours and reference["headers"]["id"] == theirs
    for volatile in ("id", "root_id", "origin"):
        mine["headers"].pop(volatile), reference["headers"].pop(volatile)
    assert mine["headers"] == reference["headers"]  # task, timelimit, kwargsrepr, retries...
    assert mine["headers"]["timelimit"] == [ai_reply.time_limit, ai_reply.soft_time_limit]
    assert mine["body"] == reference["body"]  # the same arguments, same encoding
    for key in ("content-type", "content-encoding"):
        assert mine[key] == reference[key]
    delivery, expected = mine["properties"], reference["properties"]
    assert delivery["delivery_info"] == expected["delivery_info"]
    assert delivery["priority"] == expected["priority"]


def test_enqueue_from_a_running_task_names_its_parent_as_apply_async_does(broker, queue, not_eager):
    ai_reply.push_request(id="parent-1", root_id="root-0", called_directly=False, children=[])
    _task_stack.push(ai_reply)  # as the worker does while it runs a task
    try:
        enqueue(ai_reply, {"message_id": 5}, queue=queue)
        ai_reply.apply_async(kwargs={"message_id": 5}, queue=queue)
    finally:
        _task_stack.pop()
        ai_reply.pop_request()
    mine, reference = (message["headers"] for message in _published(broker, queue))
    assert (mine["root_id"], mine["parent_id"]) == ("root-0", "parent-1")
    assert (reference["root_id"], reference["parent_id"]) == ("root-0", "parent-1")


def test_enqueue_runs_the_task_at_once_when_eager(monkeypatch, celery_conf):
    ran = []
    celery_conf(task_always_eager=True)
    monkeypatch.setattr(ai_reply, "run", lambda message_id: ran.append(message_id))
    enqueue(ai_reply, {"message_id": 7})
    assert ran == [7]


@pytest.mark.django_db(transaction=True)
def test_a_worker_on_the_broker_answers_a_visitor_message(
    widget_client, queue, not_eager, celery_conf
):
    celery_conf(task_default_queue=queue)
    widget_client.init()
    with start_worker(app, pool="solo", perform_ping_check=False, queues=[queue]):
        body = widget_client.send("do you sell gift cards?").json()
        assert body["replies"] == [] and body["pending_reply"] is True
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            polled = widget_client.poll(after=body["message"]["id"]).json()
            if polled["messages"]:
                break
            time.sleep(0.1)
    connections.close_all()
    assert polled["pending_reply"] is False
    (reply,) = polled["messages"]
    stored = Message.objects.get(pk=reply["id"])
    assert stored.sender_type == SenderType.BOT
    assert stored.metadata["reply_to"] == body["message"]["id"]
