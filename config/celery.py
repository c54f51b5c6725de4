import os

from celery import Celery

from core import worker_metrics  # noqa: F401  (connects a worker's own /metrics)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("replybase")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def broker_transport_for(url: str) -> str | None:
    """`core.broker` (kombu's Redis transport reusing its client) for a plain `redis://`
    broker. Not for `rediss://`: kombu turns TLS on by default only when the transport is
    named `rediss`, so an explicit transport would connect in plain text."""
    return "core.broker:Transport" if url.split("://", 1)[0] == "redis" else None


@app.on_after_configure.connect
def _redis_broker_transport(sender: Celery, **_kwargs) -> None:
    """Whichever settings module chose the broker URL; an explicit CELERY_BROKER_TRANSPORT
    wins."""
    transport = broker_transport_for(sender.conf.broker_url or "")
    if not sender.conf.broker_transport and transport:
        sender.conf.broker_transport = transport
