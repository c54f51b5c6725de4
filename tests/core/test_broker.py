"""core.broker: the Redis broker transport reuses one Redis client per channel pool."""

import json
import uuid

import pytest
import redis
from django.conf import settings

from config.celery import app
from core.broker import Transport

# send_task always publishes, eager or not: that is what these tests want
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")


@pytest.fixture
def queue():
    name = f"replybase-test-broker-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")


def test_redis_broker_publishes_through_one_client(queue, monkeypatch):
    assert app.conf.broker_url.startswith("redis://")
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
    built = []
    real_init = redis.Redis.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        real_init(self, *args, **kwargs)

    app.send_task("bots.tasks.ai_reply", kwargs={"message_id": 1}, queue=queue)  # warm
    monkeypatch.setattr(redis.Redis, "__init__", counting_init)
    for message_id in (2, 3, 4):
        app.send_task("bots.tasks.ai_reply", kwargs={"message_id": message_id}, queue=queue)
    assert built == []  # kombu alone would build one per publish
    stored = redis.Redis.from_url(settings.REDIS_URL).lrange(queue, 0, -1)
    tasks = [json.loads(raw)["headers"] for raw in stored]
    assert sorted(h["kwargsrepr"] for h in tasks) == [
        f"{{'message_id': {n}}}" for n in (1, 2, 3, 4)
    ]
    assert {h["task"] for h in tasks} == {"bots.tasks.ai_reply"}


def test_a_new_pool_gets_a_new_client():
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as first:
            pass
        with channel.conn_or_acquire() as again:
            assert again is first
        channel._pool = None  # what a fork or reconnect does
        with channel.conn_or_acquire() as fresh:
            assert fresh is not first
            assert fresh.connection_pool is channel.pool


def test_only_plain_redis_brokers_get_it():
    from config.celery import broker_transport_for

    assert broker_transport_for("redis://127.0.0.1:6379/0") == "core.broker:Transport"
    # kombu defaults TLS on only for a transport named rediss: leave those to it
    assert broker_transport_for("rediss://cache.example:6380/0") is None
    assert broker_transport_for("amqp://guest@localhost//") is None
    assert broker_transport_for("memory://") is None
