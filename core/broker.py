"""The Celery broker transport for Redis: kombu's, with one Redis client per channel.

kombu's Redis channel builds a new `redis.Redis` for every publish (`conn_or_acquire`
without a client). redis-py 8's constructor fills a case-insensitive table of ~170 reply
callbacks, which costs more CPU than the LPUSH it sends; `POST messages` publishes one task
per AI question. The client is only a handle on the channel's connection pool (which does
the real pooling and is thread-safe), so one per pool is reused. A new pool (after a fork or
a reconnect) gets a new client.

Used when the broker URL is a Redis one (`config.settings.base`).
"""

from contextlib import contextmanager

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _reused_client = None
    _reused_client_pool = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        pool = self.pool
        if self._reused_client is None or self._reused_client_pool is not pool:
            self._reused_client = self._create_client()
            self._reused_client_pool = pool
        yield self._reused_client


class Transport(kombu_redis.Transport):
    Channel = Channel
