import secrets

import structlog
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import slugify

from core.exceptions import InvalidRequest
from tenants.models import Membership, PlanTier, Role, Tenant

User = get_user_model()
log = structlog.get_logger(__name__)


class RoleRefused(InvalidRequest):
    """A role the acting member may not give (or take away)."""


def user_get_or_create(*, email: str, with_password: bool = True) -> tuple[User, str | None]:
    """Find the user by email, or create one: with a random password (returned once), or,
    `with_password=False`, with none usable until they set one (an invitation)."""
    email = User.objects.normalize_email(email).strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidRequest(f"{email!r} is not an email address.") from exc
    limit = User._meta.get_field("username").max_length  # the email is the username
    if len(email) > limit:
        raise InvalidRequest(f"{email!r} is too long for a login (at most {limit} characters).")
    user = User.objects.filter(username=email).first()
    if user is not None:
        return user, None
    password = secrets.token_urlsafe(12) if with_password else None
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
    *, tenant: Tenant, email: str, role: str, actor_membership: Membership, base_url: str
) -> Membership:
    """Add `email` to the tenant and email them: a new account gets a link to set its own
    password (single use, valid PASSWORD_RESET_TIMEOUT), an existing one a notice. The
    inviter never learns a password: an account shared by several tenants is only ever
    opened by whoever reads its mailbox. `base_url` is the site's address for the link."""
    if role not in Role.values:
        raise InvalidRequest(f"Unknown role {role!r}.")
    if actor_membership.tenant_id != tenant.pk:
        raise InvalidRequest("You are not a member of that tenant.")
    if role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise RoleRefused("Only an owner can make someone an owner.")
    user, _ = user_get_or_create(email=email, with_password=False)
    if Membership.objects.filter(user=user, tenant=tenant).exists():
        raise InvalidRequest(f"{user.email} is already a member.")
    membership = Membership.objects.create(user=user, tenant=tenant, role=role)
    inviter = actor_membership.user.email or actor_membership.user.get_username()
    transaction.on_commit(
        lambda: _invitation_send(membership=membership, inviter=inviter, base_url=base_url)
    )
    return membership


def invitation_link(*, user: User, base_url: str) -> str:
    """The set-password link of `user` (Django's password-reset token: it stops working
    once a password is set, or after PASSWORD_RESET_TIMEOUT)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return base_url.rstrip("/") + reverse("password_reset_confirm", args=[uid, token])


def _invitation_send(*, membership: Membership, inviter: str, base_url: str) -> None:
    user, tenant = membership.user, membership.tenant
    if user.has_usable_password():
        subject = f"You were added to {tenant.name} on ReplyBase"
        body = (
            f"{inviter} added you to {tenant.name} as {membership.get_role_display()}.\n\n"
            f"Sign in as usual: {base_url.rstrip('/')}{reverse('login')}\n"
        )
    else:
        subject = f"{inviter} invited you to {tenant.name} on ReplyBase"
        body = (
            f"{inviter} invited you to {tenant.name} as {membership.get_role_display()}.\n\n"
            f"Choose your password here (the link works once):\n"
            f"{invitation_link(user=user, base_url=base_url)}\n"
        )
    try:
        send_mail(subject, body, None, [user.email])
    except Exception:  # the membership stands; the inviter can invite again
        log.exception("tenants.invitation_not_sent", tenant_id=tenant.pk, user_id=user.pk)


def owners_left(tenant_id: int, *, dropping: set[int], adding: int = 0) -> bool:
    """Would the tenant still have an owner once the memberships in `dropping` are demoted
    or removed (`adding`: owners the same change makes)? Every path that demotes or removes
    members asks this: a tenant always keeps an owner."""
    owners = Membership.objects.filter(tenant_id=tenant_id, role=Role.OWNER)
    return adding > 0 or owners.exclude(pk__in=dropping).exists()


def _ensure_another_owner(membership: Membership) -> None:
    if not owners_left(membership.tenant_id, dropping={membership.pk}):
        raise InvalidRequest("A tenant needs at least one owner.")
