"""Production: everything from the environment, nothing defaulted that could be unsafe."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import database_tuned, env, env_database

# METRICS_TOKEN: /metrics lists every tenant's slug and rollout state, so it is never open.
# EMAIL_URL: invitations and password links are emailed; without it they would be printed
# to the log, where whoever reads the log could open the new accounts.
_REQUIRED = (
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "METRICS_TOKEN",
    "EMAIL_URL",
)
_missing = [name for name in _REQUIRED if not env.str(name, default="")]
if _missing:
    raise ImproperlyConfigured(
        "Production settings need these environment variables: " + ", ".join(_missing)
    )

DEBUG = False
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
# Links in emails: PUBLIC_BASE_URL, or https:// and the first host named in full.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="").rstrip("/") or next(
    (f"https://{host}" for host in ALLOWED_HOSTS if host and host[0] not in ".*"), ""
)
METRICS_TOKEN = env("METRICS_TOKEN")
DATABASES = {"default": database_tuned(env_database("DATABASE_URL"))}

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
WHITENOISE_USE_FINDERS = False
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WEBCHAT_ALLOW_ANY_ORIGIN = False
