from celery import shared_task

from tenants.models import Tenant
from webchat.rollups import rollups_refresh_due, visitor_data_purge


@shared_task(acks_late=True)
def refresh_rollups(hours: int = 2) -> int:
    return rollups_refresh_due(hours=hours)


@shared_task(acks_late=True)
def purge_visitor_data() -> dict[str, int]:
    totals: dict[str, int] = {}
    for tenant in Tenant.objects.all().iterator():
        for key, value in visitor_data_purge(tenant=tenant).items():
            totals[key] = totals.get(key, 0) + value
    return totals
