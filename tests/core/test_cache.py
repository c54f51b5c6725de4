import pytest
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache

from core.cache import RedisCache, counters_hit, read_and_count


def test_default_cache_is_the_atomic_incr_backend():
    assert isinstance(caches["default"], RedisCache)


def test_incr_counts_atomically_and_refuses_missing_keys():
    cache.set("counter", 5, 60)
    assert cache.incr("counter") == 6
    assert cache.incr("counter", 4) == 10
    assert cache.get("counter") == 10
    with pytest.raises(ValueError):
        cache.incr("never-set")
    assert cache.get("never-set") is None  # the failed incr did not create it


def test_one_redis_client_serves_every_call():
    """Django builds a redis.Redis per cache call; ours reuses one per connection pool."""
    backend = cache._cache
    assert backend.get_client(write=True) is backend.get_client(write=True)
    assert backend.get_client() is backend.get_client("some-key")


@pytest.fixture
def redis_calls(monkeypatch):
    """The Redis commands sent from now on (until monkeypatch.undo())."""
    calls = []
    client_class = type(cache._cache.get_client(write=True))
    real = client_class.execute_command
    monkeypatch.setattr(
        client_class,
        "execute_command",
        lambda self, *args, **kw: calls.append(args[0]) or real(self, *args, **kw),
    )
    return calls


def test_counters_hit_counts_in_one_round_trip_and_sets_expiry(monkeypatch, redis_calls):
    client = cache._cache.get_client(write=True)
    calls = redis_calls
    backend = caches["default"]
    assert counters_hit(backend, {"rl:a": (60, 10), "rl:b": (5, 10)}) == [1, 1]
    assert counters_hit(backend, {"rl:a": (60, 10), "rl:b": (5, 10)}) == [2, 2]
    assert calls == ["EVAL", "EVAL"], calls  # one round trip a call, whatever the keys
    monkeypatch.undo()
    assert 55 < client.ttl(cache.make_key("rl:a")) <= 60
    assert 0 < client.ttl(cache.make_key("rl:b")) <= 5
    assert cache.get("rl:a") == 2  # plain integers, readable by django-ratelimit too


def test_counters_hit_on_another_cache_backend():
    local = LocMemCache("counters-test", {})
    assert counters_hit(local, {"k": (60, 1)}) == [1]
    assert counters_hit(local, {"k": (60, 1), "j": (60, 5)}) == [2]  # k passed its limit
    assert local.get("j") is None
    assert counters_hit(local, {"j": (60, 5), "k": (60, 9)}) == [1, 3]


def test_counters_hit_stops_after_the_first_counter_past_its_limit():
    backend = caches["default"]
    assert counters_hit(backend, {"rl:ip": (60, 1), "rl:site": (60, 100)}) == [1, 1]
    assert counters_hit(backend, {"rl:ip": (60, 1), "rl:site": (60, 100)}) == [2]
    assert cache.get("rl:site") == 1  # the refused hit did not count against the site


@pytest.mark.parametrize("backend_name", ["redis", "locmem"])
def test_read_and_count_reads_values_and_bumps_counters_in_one_call(
    backend_name, monkeypatch, redis_calls
):
    backend = caches["default"] if backend_name == "redis" else LocMemCache("rc-test", {})
    backend.set("snap", {"id": 3, "domains": ["a.test"]})
    backend.set("gen", "g1")
    calls = redis_calls
    calls.clear()  # count from here
    found, counts = read_and_count(
        backend, ["snap", "missing", "gen"], {"rc:ip": (60, 1), "rc:site": (60, 9)}
    )
    assert found == {"snap": {"id": 3, "domains": ["a.test"]}, "gen": "g1"}
    assert counts == [1, 1]
    found, counts = read_and_count(backend, ["gen"], {"rc:ip": (60, 1), "rc:site": (60, 9)})
    assert (found, counts) == ({"gen": "g1"}, [2])  # stopped at the IP limit
    assert read_and_count(backend, [], {}) == ({}, [])
    monkeypatch.undo()
    assert backend.get("rc:site") == 1
    if backend_name == "redis":
        assert calls == ["EVAL", "EVAL", "EVAL"]
