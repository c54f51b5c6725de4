from tenants.access import resolve_membership
from tenants.selectors import membership_list_for_user


def current_tenant(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = resolve_membership(request)
    return {
        "current_membership": membership,
        "current_tenant": membership.tenant if membership else None,
        "all_memberships": membership_list_for_user(user=user),
    }
