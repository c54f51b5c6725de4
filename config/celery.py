import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("replybase")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _redis_broker_transport(sender: Celery, **_kwargs) -> None:
    """A Redis broker goes through `core.broker` (kombu's transport reusing its client),
    whichever settings module chose the URL; an explicit CELERY_BROKER_TRANSPORT wins."""
    url = sender.conf.broker_url or ""
    if not sender.conf.broker_transport and url.split("://", 1)[0] in ("redis", "rediss"):
        sender.conf.broker_transport = "core.broker:Transport"
