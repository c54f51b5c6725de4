from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from tenants.models import ROLE_RANK, Membership, Role, Tenant


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


def members_to_notify(*, tenant_id: int) -> list[AbstractBaseUser]:
    """The active users who answer the tenant's visitors (agents and above) and have an
    email address."""
    roles = [role for role, rank in ROLE_RANK.items() if rank >= ROLE_RANK[Role.AGENT]]
    memberships = (
        Membership.objects.filter(tenant_id=tenant_id, role__in=roles, user__is_active=True)
        .exclude(user__email="")
        .select_related("user")
        .order_by("user__email")
    )
    return [membership.user for membership in memberships]
