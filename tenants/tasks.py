"""What tenant-wide beat tasks share."""

from tenants.models import Tenant

# One tenant's housekeeping run (retention purges): its batches commit as they go, so a run
# stopped by these limits keeps its work and the next hour's run carries on from there.
PER_TENANT_SOFT_TIME_LIMIT = 300
PER_TENANT_TIME_LIMIT = 360


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
