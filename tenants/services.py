import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from core.exceptions import InvalidRequest
from tenants.models import Membership, PlanTier, Role, Tenant

User = get_user_model()


class RoleRefused(InvalidRequest):
    """A role the acting member may not give (or take away)."""


def user_get_or_create(*, email: str) -> tuple[User, str | None]:
    """Find the user by email, or create one with a random password (returned once)."""
    email = User.objects.normalize_email(email).strip().lower()
    user = User.objects.filter(username=email).first()
    if user is not None:
        return user, None
    password = secrets.token_urlsafe(12)
    user = User.objects.create_user(username=email, email=email, password=password)
    return user, password


@transaction.atomic
def tenant_create(
    *, name: str, slug: str | None = None, plan_tier: str = PlanTier.FREE, owner_email: str
) -> tuple[Tenant, User, str | None]:
    """Create a tenant and its owner. Returns the owner's new password, or None if they existed."""
    slug = slug or slugify(name)
    if plan_tier not in PlanTier.values:
        raise InvalidRequest(
            f"Unknown plan {plan_tier!r}; choose one of {', '.join(PlanTier.values)}."
        )
    if Tenant.objects.filter(slug=slug).exists():
        raise InvalidRequest(f"A tenant with slug {slug!r} already exists.")
    tenant = Tenant(name=name, slug=slug, plan_tier=plan_tier)
    try:
        tenant.full_clean()
    except ValidationError as exc:
        raise InvalidRequest(
            "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        ) from exc
    tenant.save()
    owner, password = user_get_or_create(email=owner_email)
    Membership.objects.create(user=owner, tenant=tenant, role=Role.OWNER)
    return tenant, owner, password


def membership_set_role(
    *, membership: Membership, role: str, actor_membership: Membership
) -> Membership:
    if role not in Role.values:
        raise InvalidRequest(f"Unknown role {role!r}.")
    if membership.tenant_id != actor_membership.tenant_id:
        raise InvalidRequest("That member belongs to another tenant.")
    if role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise RoleRefused("Only an owner can make someone an owner.")
    if membership.role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise RoleRefused("Only an owner can change another owner's role.")
    if membership.role == Role.OWNER and role != Role.OWNER:
        _ensure_another_owner(membership)
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    return membership


def membership_remove(*, membership: Membership, actor_membership: Membership) -> None:
    if membership.tenant_id != actor_membership.tenant_id:
        raise InvalidRequest("That member belongs to another tenant.")
    if membership.role == Role.OWNER:
        if actor_membership.role != Role.OWNER:
            raise InvalidRequest("Only an owner can remove an owner.")
        _ensure_another_owner(membership)
    membership.delete()


def membership_invite(
    *, tenant: Tenant, email: str, role: str, actor_membership: Membership
) -> tuple[Membership, str | None]:
    if role not in Role.values:
        raise InvalidRequest(f"Unknown role {role!r}.")
    if actor_membership.tenant_id != tenant.pk:
        raise InvalidRequest("You are not a member of that tenant.")
    if role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise RoleRefused("Only an owner can make someone an owner.")
    user, password = user_get_or_create(email=email)
    if Membership.objects.filter(user=user, tenant=tenant).exists():
        raise InvalidRequest(f"{user.email} is already a member.")
    return Membership.objects.create(user=user, tenant=tenant, role=role), password


def _ensure_another_owner(membership: Membership) -> None:
    owners = Membership.objects.filter(tenant_id=membership.tenant_id, role=Role.OWNER)
    if not owners.exclude(pk=membership.pk).exists():
        raise InvalidRequest("A tenant needs at least one owner.")
