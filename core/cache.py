"""Django's Redis cache with a one-round-trip, atomic `incr`.

Django's `RedisCache.incr` asks EXISTS and then INCRBY: two round trips and a race between
them. Rate-limit counters (django-ratelimit) call it on every API request, so this backend
does both in one Lua script.
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

_INCR_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""


class AtomicIncrRedisCacheClient(RedisCacheClient):
    def incr(self, key, delta):
        client = self.get_client(key, write=True)
        value = client.eval(_INCR_IF_EXISTS, 1, key, delta)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = AtomicIncrRedisCacheClient
