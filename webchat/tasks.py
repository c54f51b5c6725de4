from celery import shared_task
from django.conf import settings

from tenants.models import Tenant
from webchat.rollups import rollups_refresh_due, visitor_data_purge

# One tenant's purge: its batches commit as they go, so a run stopped by these limits
# keeps its work and the next hour's run carries on from there.
PURGE_SOFT_TIME_LIMIT = 300
PURGE_TIME_LIMIT = 360


@shared_task(acks_late=True)
def refresh_rollups(hours: int = 2) -> int:
    return rollups_refresh_due(hours=hours)


@shared_task(acks_late=True)
def purge_visitor_data() -> int:
    """Beat (hourly): one purge task per tenant, so a tenant with a large backlog holds up
    no other and a run cut short starts nobody over from the first tenant."""
    tenant_ids = list(Tenant.objects.order_by("id").values_list("id", flat=True))
    for tenant_id in tenant_ids:
        purge_tenant_visitor_data.delay(tenant_id=tenant_id)
    return len(tenant_ids)


@shared_task(acks_late=True, soft_time_limit=PURGE_SOFT_TIME_LIMIT, time_limit=PURGE_TIME_LIMIT)
def purge_tenant_visitor_data(tenant_id: int) -> dict[str, int]:
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return {}
    return visitor_data_purge(tenant=tenant, max_batches=settings.RETENTION_MAX_BATCHES)
