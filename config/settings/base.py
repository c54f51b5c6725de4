"""Every setting lives here, switched by environment variables.

`local.py` (embedded `make run`), `test.py` and `production.py` only adjust or tighten.
"""

import re
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent


class Env(environ.Env):
    """django-environ, naming the variable whose value cannot be read as asked: its own
    error is only e.g. "invalid literal for int() with base 10: 'abc'"."""

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except ValueError as exc:  # json.JSONDecodeError is one too
            raise ImproperlyConfigured(
                f"The environment variable {var} cannot be read: {exc}"
            ) from exc


env = Env()

# django-ratelimit's rates, strictly: its own parser reads "10/M" or "10/x" as ten a second
# and fails every request it counts on "abc/m" or "10/0m".
_RATE = re.compile(r"\d+/([1-9]\d*)?[smhd]")


def env_rate(name: str, default: str) -> str:
    rate = env.str(name, default=default).strip()
    if not _RATE.fullmatch(rate):
        raise ImproperlyConfigured(
            f"{name}={rate!r} is not a rate: give requests/period, e.g. 20/m or 100/5m "
            "(period s, m, h or d)."
        )
    return rate


def env_int(name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    value = env.int(name, default=default)
    if value < minimum or (maximum is not None and value > maximum):
        upto = f" to {maximum}" if maximum is not None else " or more"
        raise ImproperlyConfigured(f"{name}={value}: give a whole number from {minimum}{upto}.")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.str(name, default=default).strip()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r}: use one of {', '.join(choices)}.")
    return value


def env_database(name: str, default: str | None = None) -> dict:
    """`env.db`, refusing what is no database URL ("", "postgres//host"), which
    django-environ reads as an empty dict."""
    database = env.db(name) if default is None else env.db(name, default=default)
    if not database.get("ENGINE"):
        raise ImproperlyConfigured(
            f"{name} is not a database URL, e.g. postgres://user:password@host:5432/name."
        )
    return database


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="insecure-dev-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "corsheaders",
    "drf_spectacular",
    "django_celery_beat",
    "core",
    "tenants",
    "crm",
    "bots",
    "webchat",
    "rollout",
    "support",
]

MIDDLEWARE = [
    "core.middleware.RequestContextMiddleware",
    "core.middleware.MetricsMiddleware",
    "core.middleware.DropNulFromQueryMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.current_tenant",
            ],
            "builtins": ["tenants.templatetags.workspace"],
        },
    },
]


def database_tuned(
    database: dict, *, conn_max_age: int | None = None, prepared: bool | None = None
) -> dict:
    """How this project runs one database (a `DATABASES` entry from its URL): every
    settings module passes its own through here. `conn_max_age` and `prepared` default
    to `CONN_MAX_AGE` and `DATABASE_PREPARED_STATEMENTS` from the environment."""
    database["CONN_MAX_AGE"] = (
        env.int("CONN_MAX_AGE", default=60) if conn_max_age is None else conn_max_age
    )
    database["CONN_HEALTH_CHECKS"] = True
    options = database.setdefault("OPTIONS", {})
    if database["ENGINE"].endswith("sqlite3"):
        # The embedded mode: a transaction that reads (the conversation's "lock") before
        # it writes must take SQLite's write lock at BEGIN, or a concurrent writer makes
        # its first write fail at once with "database is locked" instead of waiting.
        options.update(transaction_mode="IMMEDIATE", timeout=20)
    elif database["ENGINE"].endswith("postgresql") and (
        env.bool("DATABASE_PREPARED_STATEMENTS", default=True) if prepared is None else prepared
    ):
        # psycopg prepares a statement of a `core.rows.cursor` from its second run on a
        # connection (Django's own queries bind on the client and are never prepared).
        # Off behind a pooler that cannot keep prepared statements (see the README).
        options.setdefault("prepare_threshold", 1)
    return database


DATABASES = {
    "default": database_tuned(
        env_database("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis serves the cache, the rate limits and the Celery broker unless overridden.
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="rb"),
            "TIMEOUT": 300,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Email: team invitations and password links. The default prints them to the log.
vars().update(env.email_url_config(env.str("EMAIL_URL", default="") or "consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="ReplyBase <no-reply@localhost>")
# Where the dashboard is served, for links in emails sent outside a request (handoff
# notifications), e.g. https://app.replybase.example.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="").rstrip("/")
# Handoff emails a tenant's team gets per hour at most (visitors start handoffs: a flood
# of them must not turn into a flood of emails); past it they are logged, not sent.
HANDOFF_EMAILS_PER_HOUR = env_int("HANDOFF_EMAILS_PER_HOUR", default=30, minimum=0)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# Only production collects static files; elsewhere WhiteNoise serves them from the finders.
STATIC_ROOT = env("STATIC_ROOT", default=None)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the finders when collectstatic has not run (embedded mode, tests).
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False

# --- REST framework / OpenAPI --------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "core.exception_handler.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ReplyBase webchat API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The token routes' scheme (webchat.api.schema.SESSION_TOKEN names it).
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "sessionToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "The session_token from init, as 'Authorization: Bearer <token>'.",
            }
        }
    },
    # The public API's enums by what they are, not by their field names ("code", "type").
    "ENUM_NAME_OVERRIDES": {
        "ErrorCodeEnum": "webchat.api.serializers.ERROR_CODES",
        "EventTypeEnum": "webchat.api.serializers.EVENT_TYPES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "webchat.api.schema.document_retry_after",
    ],
}

# --- CORS: no global allowlist; the webchat app allows per site via a signal. ----------
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_URLS_REGEX = r"^/api/webchat/.*$"
CORS_ALLOW_HEADERS = ["authorization", "content-type"]
CORS_PREFLIGHT_MAX_AGE = 600
# The widget honours the server's Retry-After on 429s, so it must be able to read it.
CORS_EXPOSE_HEADERS = ["Retry-After"]

# --- Rate limits (django-ratelimit): counters live in the shared cache. ---------------
RATELIMIT_USE_CACHE = "default"
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
# Failed sign-ins (dashboard and admin) per client address, per account from one address,
# and per account from anywhere.
SIGNIN_RATE_IP = env_rate("SIGNIN_RATE_IP", default="30/10m")
SIGNIN_RATE_ACCOUNT = env_rate("SIGNIN_RATE_ACCOUNT", default="10/15m")
SIGNIN_RATE_ACCOUNT_ANY_IP = env_rate("SIGNIN_RATE_ACCOUNT_ANY_IP", default="100/h")

# --- Celery ------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=30)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=60)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE: dict = {
    "webchat-rollups": {"task": "webchat.tasks.refresh_rollups", "schedule": 300.0},
    "webchat-retention": {"task": "webchat.tasks.purge_visitor_data", "schedule": 3600.0},
}

# --- Logging: structlog JSON lines on stdout, carrying request_id and tenant_id. -------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "core.logs.json_formatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.server": {"level": "WARNING"},
    },
}

# --- Metrics -------------------------------------------------------------------------
# With several gunicorn workers set PROMETHEUS_MULTIPROC_DIR (see gunicorn.conf.py).
METRICS_TOKEN = env("METRICS_TOKEN", default="")

# --- Data retention (beat, hourly, one task per tenant) ----------------------------------
# Personal data past a tenant's `pii_retention_days` is anonymized 500 rows per statement;
# one run does at most this many batches of each kind per tenant, the next run the rest.
RETENTION_MAX_BATCHES = env_int("RETENTION_MAX_BATCHES", 200, minimum=1)

# --- Product settings ------------------------------------------------------------------
DEMO_MODE = env.bool("DEMO_MODE", default=False)
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", default="")
if FIELD_ENCRYPTION_KEY:  # checked now: a malformed key fails every encrypt and decrypt
    try:
        Fernet(FIELD_ENCRYPTION_KEY)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEY is not a Fernet key ({exc}); make one with "
            "cryptography.fernet.Fernet.generate_key()."
        ) from exc

# --- Webchat public API --------------------------------------------------------------
WEBCHAT_CHALLENGE_TTL = env.int("WEBCHAT_CHALLENGE_TTL", default=120)
WEBCHAT_SESSION_TTL = env.int("WEBCHAT_SESSION_TTL", default=2 * 3600)
# A returning visitor may resume with a session token up to this old (signature still checked).
WEBCHAT_RESUME_MAX_AGE = env.int("WEBCHAT_RESUME_MAX_AGE", default=30 * 24 * 3600)
# A bare "*" in a site's allowed domains: refused in production.
WEBCHAT_ALLOW_ANY_ORIGIN = env.bool("WEBCHAT_ALLOW_ANY_ORIGIN", default=True)
WEBCHAT_MAX_BODY_BYTES = 32 * 1024
WEBCHAT_CONFIG_CACHE_SECONDS = env.int("WEBCHAT_CONFIG_CACHE_SECONDS", default=30)
# Rate limits (django-ratelimit syntax) per route and per key: ip (one address on one site),
# address (one address on every site together), site, session.
WEBCHAT_RATE_LIMITS = {
    "config": {
        "ip": env_rate("WEBCHAT_RL_CONFIG_IP", default="60/m"),
        "address": env_rate("WEBCHAT_RL_CONFIG_ADDRESS", default="600/m"),
        "site": env_rate("WEBCHAT_RL_CONFIG_SITE", default="6000/m"),
    },
    "init": {
        "ip": env_rate("WEBCHAT_RL_INIT_IP", default="20/m"),
        "address": env_rate("WEBCHAT_RL_INIT_ADDRESS", default="200/m"),
        "site": env_rate("WEBCHAT_RL_INIT_SITE", default="3000/m"),
    },
    "messages_post": {
        "ip": env_rate("WEBCHAT_RL_MESSAGES_IP", default="60/m"),
        "address": env_rate("WEBCHAT_RL_MESSAGES_ADDRESS", default="600/m"),
        "site": env_rate("WEBCHAT_RL_MESSAGES_SITE", default="6000/m"),
        "session": env_rate("WEBCHAT_RL_MESSAGES_SESSION", default="20/m"),
    },
    "messages_get": {
        "ip": env_rate("WEBCHAT_RL_POLL_IP", default="240/m"),
        "address": env_rate("WEBCHAT_RL_POLL_ADDRESS", default="2400/m"),
        "site": env_rate("WEBCHAT_RL_POLL_SITE", default="60000/m"),
        "session": env_rate("WEBCHAT_RL_POLL_SESSION", default="90/m"),
    },
    "events": {
        "ip": env_rate("WEBCHAT_RL_EVENTS_IP", default="60/m"),
        "address": env_rate("WEBCHAT_RL_EVENTS_ADDRESS", default="600/m"),
        "site": env_rate("WEBCHAT_RL_EVENTS_SITE", default="10000/m"),
        "session": env_rate("WEBCHAT_RL_EVENTS_SESSION", default="30/m"),
    },
    # Site keys the cache does not know (each costs a database lookup): made-up keys, or a
    # site's first visitor after its cache entry expired.
    "site_lookup": {"ip": env_rate("WEBCHAT_RL_SITE_LOOKUP_IP", default="30/m")},
}
# Client IPs: REMOTE_ADDR, or behind this many proxies (each appending to X-Forwarded-For)
# the X-Forwarded-For entry that many from its end. WEBCHAT_TRUST_X_FORWARDED_FOR=true, the
# older setting, means one proxy.
WEBCHAT_TRUSTED_PROXIES = env_int(
    "WEBCHAT_TRUSTED_PROXIES",
    1 if env.bool("WEBCHAT_TRUST_X_FORWARDED_FOR", default=False) else 0,
    minimum=0,
)

# --- Rollout -------------------------------------------------------------------------
# How long a webchat allow/deny decision is cached: a kill takes effect within this time.
ROLLOUT_DECISION_TTL = env.int("ROLLOUT_DECISION_TTL", default=5)
# Used until an operator saves a policy: `ga` keeps the pre-rollout behaviour (every tenant
# on unless forced off); set `off` or `pilot` for a cautious new installation.
ROLLOUT_MODES = ("off", "pilot", "tiered", "ga")  # rollout.models.Mode (apps load later)
ROLLOUT_DEFAULT_MODE = env_choice("ROLLOUT_DEFAULT_MODE", "ga", ROLLOUT_MODES)
# SLO gates: per tenant over a window; below the minimum sample size promotion holds.
ROLLOUT_GATE_WINDOW_HOURS = env.int("ROLLOUT_GATE_WINDOW_HOURS", default=24)
ROLLOUT_GATE_MIN_MESSAGES = env.int("ROLLOUT_GATE_MIN_MESSAGES", default=100)
# A visitor message younger than this may still get its reply: not counted as unanswered.
ROLLOUT_GATE_REPLY_GRACE_SECONDS = env.int("ROLLOUT_GATE_REPLY_GRACE_SECONDS", default=120)
# `target` must hold to pass (promote); breaching `hard` with enough samples demotes.
# Override any part with ROLLOUT_GATE_THRESHOLDS='{"p95_reply_seconds": {"hard": 20}}'.
ROLLOUT_GATE_THRESHOLDS = {
    "error_event_rate": {"target": 0.02, "hard": 0.10},
    "message_success_rate": {"target": 0.98, "hard": 0.90},
    "ai_fallback_rate": {"target": 0.30, "hard": 0.60},
    "p95_reply_seconds": {"target": 10.0, "hard": 30.0},
    "origin_denied_rate": {"target": 0.05, "hard": 0.50},
    "token_failure_rate": {"target": 0.05, "hard": 0.50},
    "rate_limited_rate": {"target": 0.05, "hard": 0.50},
}


def gate_thresholds_override(thresholds: dict, overrides: object) -> dict:
    """`thresholds` with the operator's overrides, each a known gate's target or hard limit
    as a number: a typo would go unused, a number written as text fail every gate run."""
    example = '(e.g. {"p95_reply_seconds": {"hard": 20}})'
    if not isinstance(overrides, dict):
        raise ImproperlyConfigured(f"ROLLOUT_GATE_THRESHOLDS must be a JSON object {example}.")
    merged = dict(thresholds)
    for gate, limits in overrides.items():
        if gate not in thresholds:
            raise ImproperlyConfigured(
                f"ROLLOUT_GATE_THRESHOLDS: unknown gate {gate!r}; the gates are "
                f"{', '.join(thresholds)}."
            )
        if (
            not isinstance(limits, dict)
            or not limits
            or not all(
                key in ("target", "hard")
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                for key, value in limits.items()
            )
        ):
            raise ImproperlyConfigured(
                f"ROLLOUT_GATE_THRESHOLDS: {gate} takes a number as target and/or hard {example}."
            )
        merged[gate] = {**thresholds[gate], **limits}
    return merged


ROLLOUT_GATE_THRESHOLDS = gate_thresholds_override(
    ROLLOUT_GATE_THRESHOLDS, env.json("ROLLOUT_GATE_THRESHOLDS", default={})
)
# Where a failing tenant goes: off (forced off), canary or pilot (held at the pilot).
ROLLOUT_DEMOTION_TARGETS = ("off", "canary", "pilot")  # rollout.services.DEMOTION_TARGETS
ROLLOUT_DEMOTION_TARGET = env_choice("ROLLOUT_DEMOTION_TARGET", "off", ROLLOUT_DEMOTION_TARGETS)
ROLLOUT_GATE_HISTORY_DAYS = env.int("ROLLOUT_GATE_HISTORY_DAYS", default=7)
# Slack-compatible incoming webhook for demotions and kill-switch changes (empty: log only).
ROLLOUT_ALERT_WEBHOOK_URL = env("ROLLOUT_ALERT_WEBHOOK_URL", default="")
ROLLOUT_ALERT_TIMEOUT_SECONDS = env.float("ROLLOUT_ALERT_TIMEOUT_SECONDS", default=5.0)
# Monitoring: a site has live traffic when a session or event was seen this recently.
ROLLOUT_LIVE_TRAFFIC_MINUTES = env.int("ROLLOUT_LIVE_TRAFFIC_MINUTES", default=15)
CELERY_BEAT_SCHEDULE.update(
    {
        "rollout-scheduled-changes": {
            "task": "rollout.tasks.apply_scheduled_changes",
            "schedule": 30.0,
        },
        "rollout-gates": {"task": "rollout.tasks.evaluate_gates", "schedule": 300.0},
    }
)

# --- Support (Chatwoot) ------------------------------------------------------------------
# These env vars define a default connection for single-tenant installs (synced by the
# health check); per-tenant connections live in the database.
CHATWOOT_BASE_URL = env("CHATWOOT_BASE_URL", default="")
CHATWOOT_TOKEN = env("CHATWOOT_TOKEN", default="")
CHATWOOT_ACCOUNT_ID = env("CHATWOOT_ACCOUNT_ID", default="")
# The bounds of ChatwootConnection.sla_minutes: the env connection is saved unvalidated.
CHATWOOT_SLA_MINUTES = env_int("CHATWOOT_SLA_MINUTES", 30, minimum=1, maximum=10080)
CHATWOOT_EMBED_TOKEN = env("CHATWOOT_EMBED_TOKEN", default="")
CHATWOOT_WEBHOOK_SECRET = env("CHATWOOT_WEBHOOK_SECRET", default="")
CHATWOOT_INBOX_ID = env("CHATWOOT_INBOX_ID", default="")
CHATWOOT_HEALTH_PATH = env("CHATWOOT_HEALTH_PATH", default="/health")
# Tenant (slug) that owns the default connection; empty: the only tenant there is.
CHATWOOT_TENANT = env("CHATWOOT_TENANT", default="")
# Outbound calls: per-request timeout, and backoff base (retries after 1, 2, 4, 8 × base s).
CHATWOOT_HTTP_TIMEOUT = env.float("CHATWOOT_HTTP_TIMEOUT", default=10.0)
CHATWOOT_RETRY_BASE_SECONDS = env.float("CHATWOOT_RETRY_BASE_SECONDS", default=1.0)
# Health probes (never retried): the timeout of each of a connection's two probes.
CHATWOOT_HEALTH_TIMEOUT_SECONDS = env.float("CHATWOOT_HEALTH_TIMEOUT_SECONDS", default=10.0)
CHATWOOT_WEBHOOK_MAX_AGE_SECONDS = 300
CHATWOOT_WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
CHATWOOT_HEALTH_ARTIFACT_DIR = env(
    "CHATWOOT_HEALTH_ARTIFACT_DIR", default=str(BASE_DIR / "artifacts" / "ops" / "chatwoot-health")
)
SUPPORT_EVIDENCE_DIR = env("SUPPORT_EVIDENCE_DIR", default=str(BASE_DIR / "artifacts" / "support"))
# Slack-compatible incoming webhook ({"text": ...}); empty: alerts are only recorded.
SUPPORT_ALERT_WEBHOOK_URL = env("SUPPORT_ALERT_WEBHOOK_URL", default="")
SUPPORT_ALERT_COOLDOWN_SECONDS = env.int("SUPPORT_ALERT_COOLDOWN_SECONDS", default=1800)
SUPPORT_APPROVAL_QUEUE_ALERT_DEPTH = env.int("SUPPORT_APPROVAL_QUEUE_ALERT_DEPTH", default=25)
SUPPORT_RETRY_QUEUE_ALERT_DEPTH = env.int("SUPPORT_RETRY_QUEUE_ALERT_DEPTH", default=50)
# Health checks, sent alerts and done retries older than this are deleted (support.retention).
SUPPORT_RECORDS_RETENTION_DAYS = env.int("SUPPORT_RECORDS_RETENTION_DAYS", default=30)
CELERY_BEAT_SCHEDULE.update(
    {
        "support-retention": {"task": "support.tasks.purge_support_data", "schedule": 3600.0},
        "support-health-checks": {"task": "support.tasks.check_health_all", "schedule": 900.0},
        "support-sla-and-queues": {"task": "support.tasks.monitor", "schedule": 60.0},
        "support-retry-due": {"task": "support.tasks.retry_due", "schedule": 60.0},
    }
)
