from django.db import models


class BaseModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        abstract = True


class TenantOwnedModel(BaseModel):
    """Every tenant-owned row carries a non-null, indexed tenant FK (its own index, or the
    first column of a composite one).

    Queries that serve a request filter on it in a selector; never trust a client id.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, db_index=True)

    class Meta:
        abstract = True
