"""The role check every dashboard view goes through.

The tenant comes from the user's membership (the one chosen in the switcher, kept in the
session), never from the request body. A user who is not a member gets 404, a member
whose role is too low gets 403.
"""

from collections.abc import Callable
from functools import wraps

import structlog
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from tenants.models import Role
from tenants.selectors import membership_get

SESSION_TENANT_KEY = "current_tenant_id"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def resolve_membership(request: HttpRequest):
    membership = getattr(request, "_membership_cache", None)
    if membership is None and request.user.is_authenticated:
        membership = membership_get(
            user=request.user, tenant_id=request.session.get(SESSION_TENANT_KEY)
        )
        request._membership_cache = membership
    return membership


def tenant_view(*, read: str = Role.VIEWER, write: str = Role.ADMIN) -> Callable:
    """Decorate a dashboard view: reads need `read`, any other method needs `write`."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            membership = resolve_membership(request)
            if membership is None:
                raise Http404("You are not a member of any workspace.")
            needed = read if request.method in SAFE_METHODS else write
            if not membership.has_role(needed):
                raise PermissionDenied(f"This needs the {needed} role or higher.")
            request.membership = membership
            request.tenant = membership.tenant
            structlog.contextvars.bind_contextvars(tenant_id=membership.tenant_id)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
