from celery import shared_task
from django.conf import settings

from tenants.tasks import (
    PER_TENANT_SOFT_TIME_LIMIT,
    PER_TENANT_TIME_LIMIT,
    per_tenant_run,
    queue_per_tenant,
)
from webchat.rollups import rollups_refresh_due, visitor_data_purge


@shared_task(acks_late=True)
def refresh_rollups(hours: int = 2) -> int:
    return rollups_refresh_due(hours=hours)


@shared_task(acks_late=True)
def purge_visitor_data() -> int:
    """Beat (hourly): one purge task per tenant, so a tenant with a large backlog holds up
    no other and a run cut short starts nobody over from the first tenant."""
    return queue_per_tenant(purge_tenant_visitor_data)


@shared_task(
    bind=True,
    acks_late=True,
    soft_time_limit=PER_TENANT_SOFT_TIME_LIMIT,
    time_limit=PER_TENANT_TIME_LIMIT,
)
def purge_tenant_visitor_data(self, tenant_id: int) -> dict[str, int]:
    return per_tenant_run(
        self,
        tenant_id,
        lambda tenant: visitor_data_purge(
            tenant=tenant, max_batches=settings.RETENTION_MAX_BATCHES
        ),
    )
