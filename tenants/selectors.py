from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from tenants.models import Membership, Tenant


def membership_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("tenant").order_by("tenant__name")


def membership_get(*, user: AbstractBaseUser, tenant_id: int | None) -> Membership | None:
    """The user's membership in `tenant_id`, or their first one when no tenant is chosen."""
    if not user.is_authenticated:
        return None
    memberships = membership_list_for_user(user=user)
    if tenant_id is not None:
        chosen = memberships.filter(tenant_id=tenant_id).first()
        if chosen is not None:
            return chosen
    return memberships.first()


def membership_list_for_tenant(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__email")


def tenant_get_by_slug(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()
