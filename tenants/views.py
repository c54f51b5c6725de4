from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.exceptions import InvalidRequest
from crm.selectors import conversation_counts
from support import selectors as support_selectors
from support.sla import LEVEL_ORDER, Level
from tenants.access import SESSION_TENANT_KEY, redirect_on_site, tenant_view
from tenants.forms import InviteForm, RoleForm, SwitchTenantForm, TenantSettingsForm
from tenants.models import Membership, Role, Tenant
from tenants.selectors import membership_list_for_tenant, membership_list_for_user
from tenants.services import (
    RoleRefused,
    membership_invite,
    membership_remove,
    membership_set_role,
)

HOME_ESCALATIONS = 5


def _support_context(tenant: Tenant, now: datetime) -> dict:
    """The SLA tiles of `/support/`, condensed; `support` is None without a Chatwoot
    connection (the template shows what it is and where it is set up instead)."""
    if not support_selectors.connection_list(tenant=tenant).exists():
        return {"support": None}
    sla = support_selectors.sla_overview(tenant=tenant, now=now, escalations=HOME_ESCALATIONS)
    levels = sorted(sla.counts.items(), key=lambda pair: LEVEL_ORDER[Level(pair[0])])
    return {
        "support": {
            "sla": sla,
            "levels": levels,
            "approval_depth": support_selectors.approval_queue_depth(tenant=tenant),
        }
    }


@tenant_view()
def home(request):
    now = timezone.now()
    return render(
        request,
        "tenants/home.html",
        {
            "counts": conversation_counts(tenant=request.tenant),
            "now": now,
            **_support_context(request.tenant, now),
        },
    )


@login_required
@require_POST
def switch_tenant(request):
    form = SwitchTenantForm(request.POST)
    if not form.is_valid():
        raise Http404
    membership = (
        membership_list_for_user(user=request.user)
        .filter(tenant_id=form.cleaned_data["tenant_id"])
        .first()
    )
    if membership is None:
        raise Http404
    request.session[SESSION_TENANT_KEY] = membership.tenant_id
    messages.success(request, f"Switched to {membership.tenant.name}.")
    return redirect_on_site(request, request.POST.get("next", ""))


@tenant_view(read=Role.VIEWER, write=Role.ADMIN)
def tenant_settings(request):
    form = TenantSettingsForm(request.POST or None, instance=request.tenant)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Settings saved.")
        return redirect("dashboard:settings")
    can_edit = request.membership.has_role(Role.ADMIN)
    return render(request, "tenants/settings.html", {"form": form, "can_edit": can_edit})


@tenant_view(read=Role.VIEWER, write=Role.ADMIN)
def team(request):
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            membership = membership_invite(
                tenant=request.tenant,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor_membership=request.membership,
                base_url=request.build_absolute_uri("/"),
            )
        except RoleRefused as exc:
            form.add_error("role", exc.message)
        except InvalidRequest as exc:
            form.add_error("email", exc.message)
        else:
            # The same words whether the address has an account already: the page must
            # not tell an admin of one tenant who uses ReplyBase elsewhere.
            messages.success(
                request,
                f"Added {membership.user.email} as {membership.role}. We emailed them how "
                "to sign in to this workspace.",
            )
            return redirect("dashboard:team")
    return render(
        request,
        "tenants/team.html",
        {
            "form": form,
            "members": membership_list_for_tenant(tenant=request.tenant),
            "roles": Role.choices,
            "can_manage": request.membership.has_role(Role.ADMIN),
        },
    )


def _member_or_404(request, membership_id: int) -> Membership:
    return get_object_or_404(Membership, tenant=request.tenant, pk=membership_id)


@tenant_view(write=Role.ADMIN)
@require_POST
def member_role(request, membership_id: int):
    membership = _member_or_404(request, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("dashboard:team")
    try:
        membership_set_role(
            membership=membership,
            role=form.cleaned_data["role"],
            actor_membership=request.membership,
        )
    except InvalidRequest as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{membership.user.email} is now {membership.role}.")
    return redirect("dashboard:team")


@tenant_view(write=Role.ADMIN)
@require_POST
def member_remove(request, membership_id: int):
    membership = _member_or_404(request, membership_id)
    try:
        membership_remove(membership=membership, actor_membership=request.membership)
    except InvalidRequest as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Removed {membership.user.email}.")
    return redirect("dashboard:team")
