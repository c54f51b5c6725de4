import pytest
from django.core.cache import cache, caches

from core.cache import RedisCache


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
