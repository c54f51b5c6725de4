"""The role check every dashboard view goes through.

The tenant comes from the user's membership (the one chosen in the switcher, kept in the
session), never from the request body. A user who is not a member gets 404, a member
whose role is too low gets 403.
"""

from collections.abc import Callable
from functools import wraps

import structlog
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from tenants.models import Role
from tenants.selectors import membership_get

SESSION_TENANT_KEY = "current_tenant_id"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# The hidden field dashboard forms carry (`{% workspace_field %}`): the workspace they were
# rendered for.
WORKSPACE_FIELD = "workspace"


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
            unsafe = request.method not in SAFE_METHODS
            if unsafe and _posted_for_another_workspace(request, membership):
                return _refuse_stale_form(request, membership)
            needed = write if unsafe else read
            if not membership.has_role(needed):
                raise PermissionDenied(f"This needs the {needed} role or higher.")
            request.membership = membership
            request.tenant = membership.tenant
            structlog.contextvars.bind_contextvars(tenant_id=membership.tenant_id)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def _posted_for_another_workspace(request: HttpRequest, membership) -> bool:
    posted = request.POST.get(WORKSPACE_FIELD)
    return posted is not None and posted != str(membership.tenant_id)


def _refuse_stale_form(request: HttpRequest, membership) -> HttpResponse:
    """A form rendered for another workspace than the one chosen now (switched in another
    tab): nothing is saved; back to the page it came from, now showing the current one."""
    messages.error(
        request,
        f"Nothing was saved: this form was for another workspace, and you are now working "
        f"in {membership.tenant.name} (switched in another tab?). Check and try again.",
    )
    if request.headers.get("HX-Request") == "true":
        # htmx would swap the page it is sent to into a fragment: have it load one whole
        # (the page the fragment is part of may be another workspace's, so the home page).
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("dashboard:home")
        return response
    return redirect_on_site(request, request.headers.get("Referer", ""))


def redirect_on_site(request: HttpRequest, url: str) -> HttpResponse:
    """Redirect to `url` when it is on this site (never to another host or scheme), else
    to the dashboard's home."""
    if url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(url)
    return redirect("dashboard:home")
