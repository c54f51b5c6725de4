"""Embedded single-process mode for `make run`: SQLite, in-process cache, eager Celery."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
DEMO_MODE = True
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default=f"http://127.0.0.1:{env('PORT', default='8000')}")
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
# django-ratelimit refuses a non-shared cache (E003) because counters would not hold across
# processes. The embedded mode is exactly one process, so its in-memory counters are the
# whole truth; production and tests use Redis.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
