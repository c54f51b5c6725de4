"""Django's Redis cache with a one-round-trip, atomic `incr` and a reused client.

Django's `RedisCache.incr` asks EXISTS and then INCRBY: two round trips and a race between
them. Rate-limit counters (django-ratelimit) call it on every API request, so this backend
does both in one Lua script.

Django's client also builds a new `redis.Redis` object for every cache call (about 0.2 ms
of CPU each: retry policy, command parser, response callbacks), and the public API makes
several cache calls per request. A `redis.Redis` over a connection pool is thread-safe,
so one is built per pool and reused.
"""

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

_INCR_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""


class AtomicIncrRedisCacheClient(RedisCacheClient):
    def __init__(self, servers, **options):
        super().__init__(servers, **options)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))
        return client

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


# Read the first ARGV[1] keys (MGET), then count the rest in order, starting each one's
# expiry on its first hit; stop after the first whose count passes its limit, so a request
# refused by one limit (a flooding IP) does not use up the next (its site's). One round trip.
_READ_AND_COUNT = """
local reads = tonumber(ARGV[1])
local values = {}
if reads > 0 then
  values = redis.call('MGET', unpack(KEYS, 1, reads))
end
local counts = {}
for i = reads + 1, #KEYS do
  local j = i - reads
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then
    redis.call('EXPIRE', KEYS[i], ARGV[2 * j])
  end
  counts[j] = count
  if count > tonumber(ARGV[2 * j + 1]) then
    break
  end
end
return {values, counts}
"""


def read_and_count(
    cache, reads: list[str], counters: dict[str, tuple[int, int]]
) -> tuple[dict[str, Any], list[int]]:
    """Read `reads` (as `get_many`: the keys found) and add one to each counter in order
    (key -> (seconds it lives after its first hit, limit)), stopping after the first that
    passes its limit; the values read and the counts bumped.

    `cache` is a backend (`caches[alias]`). On this module's Redis backend it all costs one
    round trip (a Lua script: all keys on one Redis, not a cluster); any other (the
    embedded mode's in-process cache) gets `get_many` and the portable add-then-incr.
    """
    if not isinstance(cache, RedisCache):
        return (cache.get_many(reads) if reads else {}), _counters_hit_portable(cache, counters)
    keys = [cache.make_and_validate_key(key) for key in (*reads, *counters)]
    args = [len(reads), *(n for timeout, limit in counters.values() for n in (timeout, limit))]
    client = cache._cache.get_client(write=True)
    values, counts = client.eval(_READ_AND_COUNT, len(keys), *keys, *args)
    loads = cache._cache._serializer.loads
    found = {key: loads(raw) for key, raw in zip(reads, values, strict=True) if raw is not None}
    return found, [int(n) for n in counts]


def counters_hit(cache, counters: dict[str, tuple[int, int]]) -> list[int]:
    """`read_and_count` with nothing to read: the counts bumped."""
    return read_and_count(cache, [], counters)[1]


def _counters_hit_portable(cache, counters: dict[str, tuple[int, int]]) -> list[int]:
    counts = []
    for key, (timeout, limit) in counters.items():
        try:
            count = 1 if cache.add(key, 1, timeout) else cache.incr(key)
        except ValueError:  # expired between add and incr: a new window
            count = 1 if cache.add(key, 1, timeout) else cache.incr(key)
        counts.append(count)
        if count > limit:
            break
    return counts


_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def delete_if_equal(cache, key: str, value) -> bool:
    """Delete `key` only while it holds `value` (e.g. a lock's owner token); whether it did.

    `cache` is a backend (`caches[alias]`). Atomic on this module's Redis backend (one
    Lua script); get-then-delete on any other (the embedded mode's in-process cache).
    """
    if isinstance(cache, RedisCache):
        client = cache._cache.get_client(write=True)
        stored = cache._cache._serializer.dumps(value)  # the bytes `add`/`set` wrote
        return bool(client.eval(_DELETE_IF_EQUAL, 1, cache.make_and_validate_key(key), stored))
    if cache.get(key) != value:
        return False
    cache.delete(key)
    return True
