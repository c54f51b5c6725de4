"""Production-like settings for `make bench` (PostgreSQL + Redis, DEBUG off).

Built on `base` rather than `production`: production forces HTTPS redirects, which a
plain-HTTP loopback benchmark cannot follow. Everything else that costs time on a
request path (middleware, JSON logs, metrics, cache-backed rate limits, the site and
rollout caches) stays as deployed.
"""

from config.settings.base import *  # noqa: F403
from config.settings.base import database_tuned, env

DEBUG = False
SECRET_KEY = env("BENCH_SECRET_KEY", default="bench-secret-key-not-for-production")
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "bench.urls"

# `bench.run` creates this database, migrates it, and drops it at the end of every run.
BENCH_DATABASE_NAME = env("BENCH_DATABASE_NAME", default="replybase_bench")
DATABASES = {
    "default": database_tuned(
        env.db(
            "BENCH_DATABASE_URL",
            default=f"postgres://postgres@127.0.0.1:5432/{BENCH_DATABASE_NAME}",
        ),
        conn_max_age=60,
    )
}

# A key prefix of its own, so the run never touches the counters of tests or a dev server;
# `bench.run` deletes every key under it at the end.
REDIS_URL = env("BENCH_REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "core.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("BENCH_CACHE_PREFIX", default="rbbench"),
        "TIMEOUT": 300,
    }
}

# As deployed, a Celery worker computes the AI reply: `POST messages` stores the message,
# runs the flows and queues the task on the Redis broker, exactly as in production. No
# worker runs during the benchmark, so the tasks pile up in a queue of the run's own
# (`BENCH_CELERY_QUEUE`), which `bench.run` deletes at the end. `bench.run --ai-eager`
# computes the AI reply inside the request instead (the embedded mode's way).
CELERY_TASK_ALWAYS_EAGER = env.bool("BENCH_CELERY_EAGER", default=False)
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = env("BENCH_CELERY_QUEUE", default="replybase-bench")

# The load comes from one address and a handful of sessions: limits high enough never to
# trip, but still counted in Redis on every request exactly as in production.
_UNLIMITED = "1000000/m"
WEBCHAT_RATE_LIMITS = {
    route: dict.fromkeys(scopes, _UNLIMITED)
    for route, scopes in WEBCHAT_RATE_LIMITS.items()  # noqa: F405
}
WEBCHAT_ALLOW_ANY_ORIGIN = True

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING["root"]["level"] = LOG_LEVEL  # noqa: F405

# The baseline endpoint writes its row for the tenant and site `bench.run` seeds.
BENCH_TENANT_ID = env.int("BENCH_TENANT_ID", default=0)
BENCH_SITE_ID = env.int("BENCH_SITE_ID", default=0)
