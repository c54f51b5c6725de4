"""The test suite runs against real PostgreSQL and Redis (see README)."""

import os

from .base import *  # noqa: F403
from .base import database_tuned, env, env_database

DEBUG = False
SECRET_KEY = "test-secret-key-not-for-production"
DATABASES = {
    "default": database_tuned(
        env_database("TEST_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/postgres"),
        conn_max_age=0,  # each test thread and live-server request closes its connection
        prepared=True,  # the suite runs the hot path as deployed, whatever the environment
    )
}
# Several suites may run at once on one machine: give each run its own test database
# and cache namespace.
_RUN = env("TEST_RUN_ID", default=str(os.getpid()))
DATABASES["default"]["TEST"] = {"NAME": f"test_replybase_{_RUN}"}
REDIS_URL = env("TEST_REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "core.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"rbtest{_RUN}",
        "TIMEOUT": 300,
    }
}
CELERY_TASK_ALWAYS_EAGER = True
PUBLIC_BASE_URL = "https://app.replybase.test"
CELERY_BROKER_URL = REDIS_URL
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING["root"]["level"] = "WARNING"
