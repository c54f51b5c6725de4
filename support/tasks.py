"""Thin Celery wrappers over the support services (ids in, fetched again inside).

A task executed eagerly (`CELERY_TASK_ALWAYS_EAGER`: embedded mode, tests) runs inside the
request that queued it, so its Chatwoot calls are made `inline`: one attempt each, and a
failure goes straight to the retry queue instead of sleeping through the backoff there.
On a worker the calls keep their backoff retries.
"""

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from support import health, notify, retention, services, webhooks
from support import monitor as support_monitor
from support.models import OutboundRetry
from tenants.tasks import (
    PER_TENANT_SOFT_TIME_LIMIT,
    PER_TENANT_TIME_LIMIT,
    per_tenant_run,
    queue_per_tenant,
)

# On a worker, Chatwoot calls retry with backoff inside the task (up to ~65 s for one call
# with a hanging peer); these limits only stop a task stuck somewhere else.
OUTBOUND_SOFT_TIME_LIMIT = 240
OUTBOUND_TIME_LIMIT = 300


def _inline(task) -> bool:
    """True when the task runs in the caller's process, i.e. inside a request."""
    return bool(task.request.is_eager)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=3, retry_backoff=1)
def process_webhook(delivery_id: int) -> str | None:
    return webhooks.webhook_process(delivery_id=delivery_id)


@shared_task(
    bind=True,
    acks_late=True,
    soft_time_limit=OUTBOUND_SOFT_TIME_LIMIT,
    time_limit=OUTBOUND_TIME_LIMIT,
    autoretry_for=(OperationalError,),
    max_retries=3,
    retry_backoff=1,
)
def draft_reply(self, item_id: int) -> None:
    services.approval_item_draft(item_id=item_id, inline=_inline(self))


@shared_task(
    bind=True,
    acks_late=True,
    soft_time_limit=OUTBOUND_SOFT_TIME_LIMIT,
    time_limit=OUTBOUND_TIME_LIMIT,
    autoretry_for=(OperationalError,),
    max_retries=3,
    retry_backoff=1,
)
def send_reply(self, item_id: int) -> bool:
    return services.approval_item_send(item_id=item_id, inline=_inline(self))


@shared_task(bind=True, acks_late=True, max_retries=5, soft_time_limit=60, time_limit=90)
def notify_handoff(self, conversation_id: int) -> int:
    """Email the team about a handed-off conversation no Chatwoot inbox takes. Run inside
    the visitor's request (eager), a mail failure is logged, never the request's error."""
    inline = _inline(self)
    try:
        return notify.handoff_notify(conversation_id=conversation_id)
    except Exception as exc:  # the mail server or the database away
        if inline:
            return 0
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc


@shared_task(
    bind=True,
    acks_late=True,
    soft_time_limit=OUTBOUND_SOFT_TIME_LIMIT,
    time_limit=OUTBOUND_TIME_LIMIT,
    max_retries=30,
)
def sync_handoff(self, conversation_id: int) -> bool:
    """Mirror / forward a handed-off webchat conversation; one worker per conversation."""
    inline = _inline(self)
    try:
        return services.handoff_sync(conversation_id=conversation_id, inline=inline).ok
    except services.SyncBusy as exc:
        if inline:
            # An eager retry reruns at once, without the countdown, up to max_retries
            # times inside the request. The message stays pending: the sync holding the
            # lock (if it read it) or the next sync of this conversation posts it.
            return False
        raise self.retry(exc=exc, countdown=2) from exc
    except OperationalError as exc:
        raise self.retry(exc=exc, countdown=2) from exc


@shared_task(
    bind=True,
    acks_late=True,
    soft_time_limit=OUTBOUND_SOFT_TIME_LIMIT,
    time_limit=OUTBOUND_TIME_LIMIT,
)
def retry_outbound(self, retry_id: int) -> bool:
    retry = OutboundRetry.objects.filter(pk=retry_id).first()
    if retry is None:
        return False
    try:
        return services.retry_run(retry=retry, inline=_inline(self))
    except services.SyncBusy:
        return False  # a sync is running right now; beat tries again later


@shared_task(acks_late=True)
def retry_due() -> int:
    """Beat: run the parked Chatwoot operations whose next attempt is due."""
    ids = services.retry_due_claim()
    for retry_id in ids:
        retry_outbound.delay(retry_id=retry_id)
    return len(ids)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def check_health_all() -> int:
    """Beat (every 15 minutes): queue the health check of every active connection, one
    task per `health.CHUNK_SIZE` of them, each its own run under its own time limits (a run
    over thousands of connections would not end in one task's); how many tasks."""
    services.connection_sync_from_env()
    problem = services.env_connection_problem()
    errors = [problem] if problem else []
    chunks = health.connection_id_chunks_for_check()
    if not chunks:  # nothing to probe: the missing configuration is recorded here
        health.health_check_run([], errors=errors)
    for index, connection_ids in enumerate(chunks):
        # an env configuration problem is reported once, by the first chunk
        check_health_chunk.delay(connection_ids=connection_ids, errors=[] if index else errors)
    return len(chunks)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def check_health_chunk(connection_ids: list[int], errors: list[str] | None = None) -> int:
    """One chunk of the beat's health checks; its exit code (0: none of them is left)."""
    run = health.health_check_chunk_run(connection_ids=connection_ids, errors=errors or [])
    return run.exit_code if run else health.EXIT_OK


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def monitor() -> dict:
    """Beat (every minute): SLA breaches, queue-depth alerts, gauges, stuck deliveries."""
    return support_monitor.monitor_run()


@shared_task(acks_late=True)
def purge_support_data() -> int:
    """Beat (hourly): one support-data purge task per tenant."""
    return queue_per_tenant(purge_tenant_support_data)


@shared_task(
    bind=True,
    acks_late=True,
    soft_time_limit=PER_TENANT_SOFT_TIME_LIMIT,
    time_limit=PER_TENANT_TIME_LIMIT,
)
def purge_tenant_support_data(self, tenant_id: int) -> dict[str, int]:
    return per_tenant_run(
        self,
        tenant_id,
        lambda tenant: retention.support_data_purge(
            tenant=tenant, max_batches=settings.RETENTION_MAX_BATCHES
        ),
    )
