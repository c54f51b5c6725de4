"""What tenant-wide beat tasks share."""

from collections.abc import Callable

import structlog
from celery import Task

from core.locks import lock_acquire, lock_release
from tenants.models import Tenant

log = structlog.get_logger(__name__)

# One tenant's housekeeping run (retention purges): its batches commit as they go, so a run
# stopped by these limits keeps its work and the next hour's run carries on from there.
PER_TENANT_SOFT_TIME_LIMIT = 300
PER_TENANT_TIME_LIMIT = 360
# A run's lock outlives its task's hard time limit by this much: the limit kills a stuck
# worker's process (no `finally` runs), and its lock then expires soon after.
PER_TENANT_LOCK_MARGIN = 30


def queue_per_tenant(task) -> int:
    """Queue `task(tenant_id=...)` once for every tenant (a beat fan-out: a tenant with a
    large backlog holds up no other, and a run cut short starts nobody over); how many."""
    tenant_ids = list(Tenant.objects.order_by("id").values_list("id", flat=True))
    for tenant_id in tenant_ids:
        task.delay(tenant_id=tenant_id)
    return len(tenant_ids)


def tenant_or_none(tenant_id: int) -> Tenant | None:
    """The tenant a queued per-tenant task names (None: deleted since it was queued)."""
    return Tenant.objects.filter(pk=tenant_id).first()


def per_tenant_lock_key(task: Task, tenant_id: int) -> str:
    return f"tenants:per-tenant-task:{task.name}:{tenant_id}"


def per_tenant_run(
    task: Task, tenant_id: int, run: Callable[[Tenant], dict[str, int]]
) -> dict[str, int]:
    """`run(tenant)` for the tenant a queued per-tenant `task` names, one run at a time
    per (task, tenant); what it counted.

    When the queue backs up, the beat's next fan-out can queue a tenant's task again while
    the last copy still runs. A copy that starts then skips (logged) and counts nothing
    ({}, as for a deleted tenant), so the counts are not doubled. The lock lives a little
    longer than the task's hard time limit and is released when the run ends, failures
    included.
    """
    key = per_tenant_lock_key(task, tenant_id)
    seconds = (task.time_limit or PER_TENANT_TIME_LIMIT) + PER_TENANT_LOCK_MARGIN
    token = lock_acquire(key=key, seconds=seconds)
    if token is None:
        log.warning("tenants.per_tenant_task_skipped", task=task.name, tenant_id=tenant_id)
        return {}
    try:
        tenant = tenant_or_none(tenant_id)
        return {} if tenant is None else run(tenant)
    finally:
        if not lock_release(key=key, token=token):
            log.warning("tenants.per_tenant_task_lock_lost", task=task.name, tenant_id=tenant_id)
