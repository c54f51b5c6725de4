"""Short-lived cache locks with an owner: only the worker that took a lock releases it.

A lock that expired while its holder was still working may have been taken by another
worker by the time the first one finishes; a plain `cache.delete` would release that
other worker's lock. Each lock's value is a random owner token, and release deletes the
key only while it still holds that token: atomically on the project's Redis cache
(`core.cache.RedisCache`, one Lua script), get-then-delete on any other backend (the
embedded mode's in-process cache, where workers are threads of one process).
"""

from __future__ import annotations

import uuid

from django.core.cache import caches

from core.cache import delete_if_equal


def lock_acquire(*, key: str, seconds: int) -> str | None:
    """Take the lock for `seconds`; its owner token, or None when someone holds it."""
    token = uuid.uuid4().hex
    return token if caches["default"].add(key, token, seconds) else None


def lock_release(*, key: str, token: str) -> bool:
    """Release the lock if `token` still owns it; False when it expired or is another's."""
    # the backend itself: the `cache` proxy is no RedisCache
    return delete_if_equal(caches["default"], key, token)
