"""Operator screens in the Django admin: `/admin/webchat-rollout` (with a page per tenant)
and `/admin/webchat-monitoring`. Staff only (wrapped in `admin.site.admin_view`); changes
also need the `rollout.change_rolloutpolicy` permission. Views parse a form, call one
service and redirect; service errors become form errors.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from core.exceptions import ApplicationError
from core.text import ascii_digits
from rollout import charts, services
from rollout.exceptions import ChangedSinceLoaded, NoChange
from rollout.forms import (
    TENANT_QUERY_MAX,
    CancelScheduleForm,
    DemoteForm,
    KillSwitchForm,
    PilotAddForm,
    PolicyForm,
    SiteCanaryForm,
    TenantActionForm,
    TenantRolloutForm,
    TenantSearchForm,
)
from rollout.gates import GATE_SPECS
from rollout.models import AuditAction, ScheduleTarget
from rollout.monitoring import WINDOWS, monitoring_report
from rollout.selectors import (
    audit_list,
    decide,
    gate_latest_by_tenant,
    policy_read,
    scheduled_change_list_pending,
    scheduled_change_list_recent,
    tenant_list,
    tenant_rollout_summary,
    tenant_rows,
    tenant_stage,
    tenant_state_get,
)
from tenants.models import Tenant
from webchat.models import WebChatSite

CHANGE_PERMISSION = "rollout.change_rolloutpolicy"
TENANTS_PER_PAGE = 50
# Actions posted from a row of the rollout screen's tenant table (their errors show there).
ROW_ACTIONS = {"promote": "promote", "demote": "demote", "pilot_add": "add to the pilot"}
# The monitoring screen's per-tenant table: a page of tenants (totals stay over all of them).
MONITORING_TENANTS_PER_PAGE = 50


def _context(request: HttpRequest, title: str, **extra) -> dict:
    return {
        **admin.site.each_context(request),
        "title": title,
        "can_change": request.user.has_perm(CHANGE_PERMISSION),
        "decision_ttl": settings.ROLLOUT_DECISION_TTL,
        **extra,
    }


def _apply(form, action: Callable[[dict], str], request: HttpRequest) -> bool:
    """Validate `form`, run `action` (a service call); its errors become form errors."""
    if not form.is_valid():
        return False
    try:
        message = action(form.cleaned_data)
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return False
    messages.success(request, message)
    return True


def _only_changed(current: dict, wanted: dict, *, loaded: dict | None = None) -> dict:
    """The fields of `wanted` this operator changed: those that differ from what their page
    showed (`loaded`; the current state for a form without it) and from the current state.
    An old page never writes back what it showed: a kill switch or an auto-demotion made
    since stays. One they changed that someone else changed meanwhile is refused."""

    def norm(value):
        # by their text: a tampered page may send a list of mixed types
        return sorted(map(str, value)) if isinstance(value, list | tuple) else value

    shown = current if loaded is None else loaded
    edited = {k: v for k, v in wanted.items() if norm(v) != norm(shown.get(k))}
    clashes = [
        k
        for k, v in edited.items()
        if norm(current.get(k)) != norm(shown.get(k)) and norm(current.get(k)) != norm(v)
    ]
    if clashes:
        raise ChangedSinceLoaded(
            f"Someone changed {', '.join(clashes)} since this page was loaded "
            f"(now {', '.join(f'{k}={current.get(k)!r}' for k in clashes)}): "
            "reload it and decide again."
        )
    return {k: v for k, v in edited.items() if norm(v) != norm(current.get(k))}


# --- /admin/webchat-rollout ------------------------------------------------------------------


def _policy_action(request: HttpRequest, form: PolicyForm) -> Callable[[dict], str]:
    def run(data: dict) -> str:
        changes = _only_changed(
            policy_read().as_dict(),
            {
                "mode": data["mode"],
                "allowed_tiers": list(data["allowed_tiers"]),
                "webchat_enabled": data["webchat_enabled"],
            },
            loaded=data["loaded"],
        )
        if not changes:
            raise NoChange()
        if data["apply_at"]:
            change = services.scheduled_change_create(
                actor=request.user,
                reason=data["reason"],
                run_at=data["apply_at"],
                target=ScheduleTarget.POLICY,
                changes=changes,
                override_gates=data["override_gates"],
            )
            return f"Policy change #{change.pk} scheduled for {change.run_at:%Y-%m-%d %H:%M} UTC."
        services.policy_update(
            actor=request.user,
            reason=data["reason"],
            override_gates=data["override_gates"],
            **changes,
        )
        return "Policy saved. Every web instance applies it on its next request."

    return run


def _tenant_actions(request: HttpRequest) -> dict[str, tuple[type, Callable]]:
    user = request.user

    def promote(data: dict) -> str:
        services.tenant_promote(tenant=data["tenant"], actor=user, reason=data["reason"])
        return f"{data['tenant'].name} promoted."

    def demote(data: dict) -> str:
        services.tenant_demote(
            tenant=data["tenant"], actor=user, reason=data["reason"], target=data["target"]
        )
        return f"{data['tenant'].name} demoted."

    def pilot_add(data: dict) -> str:
        services.tenant_rollout_update(
            tenant=data["tenant"],
            actor=user,
            reason=data["reason"],
            in_pilot=True,
            canary_only=data["canary_only"],
        )
        return f"{data['tenant'].name} added to the pilot."

    return {
        "promote": (TenantActionForm, promote),
        "demote": (DemoteForm, demote),
        "pilot_add": (PilotAddForm, pilot_add),
    }


@require_http_methods(["GET", "POST"])
def rollout_screen(request: HttpRequest) -> HttpResponse:
    policy = policy_read()
    bound: dict[str, object] = {}
    row_errors: dict[int, object] = {}
    if request.method == "POST":
        if not request.user.has_perm(CHANGE_PERMISSION):
            raise PermissionDenied
        action = request.POST.get("action", "")
        user = request.user
        if action == "policy":
            form = PolicyForm(request.POST)
            ok = _apply(form, _policy_action(request, form), request)
        elif action in ("kill", "restore"):
            form = KillSwitchForm(request.POST)

            def toggle(data: dict, enabled: bool = action == "restore") -> str:
                services.kill_switch_set(actor=user, reason=data["reason"], enabled=enabled)
                return "Webchat re-enabled." if enabled else "Kill switch on: webchat is off."

            ok = _apply(form, toggle, request)
        elif action in ROW_ACTIONS:
            form_class, run = _tenant_actions(request)[action]
            form = form_class(request.POST)
            ok = _apply(form, run, request)
            if not ok and "tenant" in form.cleaned_data:
                row_errors[form.cleaned_data["tenant"].pk] = form
            elif not ok:
                messages.error(
                    request, f"Could not {ROW_ACTIONS[action]}: pick a tenant from the table."
                )
        elif action == "cancel_schedule":
            form = CancelScheduleForm(request.POST)

            def cancel(data: dict) -> str:
                services.scheduled_change_cancel(
                    change=data["change"], actor=user, reason=data["reason"]
                )
                return f"Scheduled change #{data['change'].pk} cancelled."

            ok = _apply(form, cancel, request)
        elif action == "evaluate":
            results = services.gates_evaluate(demote=False)
            messages.success(request, f"Gates evaluated for {len(results)} active tenants.")
            ok, form = True, None
        else:
            return HttpResponse("Unknown action.", status=400)
        if ok:  # back to the same page of the table (and search)
            return redirect(request.get_full_path())
        bound[action] = form
        policy = policy_read()
    return render(
        request,
        "rollout/rollout.html",
        _rollout_context(request, policy, bound, row_errors),
        status=400 if bound else 200,
    )


def _rollout_context(request, policy, bound: dict, row_errors: dict) -> dict:
    query = request.GET.get("q", "").strip()[:TENANT_QUERY_MAX]
    page = Paginator(
        tenant_list(query=query).values_list("pk", flat=True), TENANTS_PER_PAGE
    ).get_page(request.GET.get("page"))
    rows = tenant_rows(policy=policy, tenants=Tenant.objects.filter(pk__in=list(page)))
    shown = {
        "mode": policy.mode,
        "allowed_tiers": list(policy.allowed_tiers),
        "webchat_enabled": policy.webchat_enabled,
    }
    policy_form = bound.get("policy") or PolicyForm(
        initial={**shown, "loaded": PolicyForm.loaded_value(shown)}
    )
    return _context(
        request,
        "Webchat rollout",
        policy=policy,
        policy_form=policy_form,
        kill_form=bound.get("kill") or bound.get("restore") or KillSwitchForm(),
        cancel_form=bound.get("cancel_schedule"),
        rows=rows,
        row_errors=row_errors,
        page=page,
        query=query,
        summary=tenant_rollout_summary(),
        pending=list(scheduled_change_list_pending()),
        recent=scheduled_change_list_recent(),
        audit=audit_list(limit=30),
        demotion_target=settings.ROLLOUT_DEMOTION_TARGET,
        min_samples=settings.ROLLOUT_GATE_MIN_MESSAGES,
        window_hours=settings.ROLLOUT_GATE_WINDOW_HOURS,
    )


# --- /admin/webchat-rollout/tenants/<id> -----------------------------------------------------


@require_http_methods(["GET", "POST"])
def rollout_tenant(request: HttpRequest, tenant_id: int) -> HttpResponse:
    tenant = get_object_or_404(Tenant, pk=tenant_id)
    bound: dict[str, object] = {}
    if request.method == "POST":
        if not request.user.has_perm(CHANGE_PERMISSION):
            raise PermissionDenied
        action = request.POST.get("action", "")
        user = request.user
        if action == "tenant":
            form = TenantRolloutForm(request.POST)

            def update(data: dict) -> str:
                changes = _only_changed(
                    tenant_state_get(tenant=tenant).as_dict(),
                    {
                        k: data[k] or (False if k != "override" else "")
                        for k in ("override", "in_pilot", "canary_only")
                    },
                    loaded=data["loaded"],
                )
                if not changes:
                    raise NoChange()
                if data["apply_at"]:
                    change = services.scheduled_change_create(
                        actor=user,
                        reason=data["reason"],
                        run_at=data["apply_at"],
                        target=ScheduleTarget.TENANT,
                        tenant=tenant,
                        changes=changes,
                    )
                    return f"Change #{change.pk} scheduled for {change.run_at:%Y-%m-%d %H:%M} UTC."
                services.tenant_rollout_update(
                    tenant=tenant, actor=user, reason=data["reason"], **changes
                )
                return "Tenant rollout saved."

            ok = _apply(form, update, request)
        elif action in ("promote", "demote"):
            form_class, run = _tenant_actions(request)[action]
            data = request.POST.copy()
            data["tenant"] = str(tenant.pk)
            form = form_class(data)
            ok = _apply(form, run, request)
        elif action == "site_canary":
            form = SiteCanaryForm(request.POST, tenant=tenant)

            def canary(data: dict) -> str:
                site = services.site_canary_set(
                    site=data["site"],
                    actor=user,
                    reason=data["reason"],
                    is_canary=data["is_canary"],
                )
                state = "now a canary" if site.is_canary else "no longer a canary"
                return f"{site.name} is {state}."

            ok = _apply(form, canary, request)
        elif action == "evaluate":
            evaluation = services.gate_evaluate_tenant(tenant=tenant)
            messages.success(request, f"Gates evaluated: {evaluation.get_status_display()}.")
            ok, form = True, None
        else:
            return HttpResponse("Unknown action.", status=400)
        if ok:
            return redirect("rollout:tenant", tenant_id=tenant.pk)
        bound[action] = form
    return render(
        request,
        "rollout/tenant.html",
        _tenant_context(request, tenant, bound),
        status=400 if bound else 200,
    )


def _tenant_context(request, tenant: Tenant, bound: dict) -> dict:
    policy = policy_read()
    state = tenant_state_get(tenant=tenant)
    sites = list(WebChatSite.objects.filter(tenant=tenant).order_by("name"))
    gate = gate_latest_by_tenant(tenant_ids=[tenant.pk]).get(tenant.pk)
    row = tenant_rows(policy=policy, tenants=Tenant.objects.filter(pk=tenant.pk))[0]
    return _context(
        request,
        f"Rollout: {tenant.name}",
        tenant=tenant,
        policy=policy,
        state=state,
        stage=tenant_stage(policy, state),
        row=row,
        sites=[(site, decide(policy, state, site.is_canary)) for site in sites],
        gate=gate,
        gate_specs=GATE_SPECS,
        tenant_form=bound.get("tenant")
        or TenantRolloutForm(
            initial={**state.as_dict(), "loaded": TenantRolloutForm.loaded_value(state.as_dict())}
        ),
        promote_form=bound.get("promote"),
        demote_form=bound.get("demote")
        or DemoteForm(initial={"tenant": tenant.pk, "target": settings.ROLLOUT_DEMOTION_TARGET}),
        canary_form=bound.get("site_canary"),
        pending=list(scheduled_change_list_pending(tenant=tenant)),
        audit=audit_list(tenant=tenant, limit=50),
        min_samples=settings.ROLLOUT_GATE_MIN_MESSAGES,
        window_hours=settings.ROLLOUT_GATE_WINDOW_HOURS,
        demote_actions=(AuditAction.DEMOTE, AuditAction.AUTO_DEMOTE),
    )


# --- /admin/webchat-monitoring ---------------------------------------------------------------


@require_GET
def monitoring_screen(request: HttpRequest) -> HttpResponse:
    window = request.GET.get("window", "24h")
    tenant = None
    wanted = request.GET.get("tenant", "")
    if ascii_digits(wanted) and len(wanted) <= 18:
        tenant = get_object_or_404(Tenant, pk=int(wanted))
    search = TenantSearchForm(request.GET)
    query = search.cleaned_data["q"] if search.is_valid() else ""
    report = monitoring_report(
        policy=policy_read(),
        window=window,
        tenant=tenant,
        tenants=tenant_list(query=query) if search.is_valid() else Tenant.objects.none(),
        page=request.GET.get("page"),
        per_page=MONITORING_TENANTS_PER_PAGE,
    )
    series, hours = report.series, report.hours
    chart_list = [
        charts.line_chart(
            title="Traffic",
            hours=hours,
            lines=[
                charts.Line("Sessions", series["sessions"]),
                charts.Line("Conversations", series["conversations"]),
                charts.Line("Messages in", series["messages_in"]),
                charts.Line("Messages out", series["messages_out"]),
            ],
            y_label="per hour",
            chart_id="chart-traffic",
        ),
        charts.line_chart(
            title="Widget events and errors",
            hours=hours,
            lines=[
                charts.Line("Widget events", series["widget_events"]),
                charts.Line("Error events", series["error_events"]),
            ],
            y_label="events per hour",
            chart_id="chart-events",
        ),
        charts.line_chart(
            title="Security incidents",
            hours=hours,
            lines=[
                charts.Line("Blocked origin", series["origin_denied"]),
                charts.Line("Token/challenge", series["token_failures"]),
                charts.Line("Rate limited", series["rate_limited"]),
            ],
            y_label="incidents per hour",
            chart_id="chart-incidents",
        ),
    ]
    searched = {"q": query} if query else {}
    chosen = {"tenant": tenant.pk} if tenant else {}
    return render(
        request,
        "rollout/monitoring.html",
        _context(
            request,
            "Webchat monitoring",
            report=report,
            tenant_page=report.tenant_page,
            search=search,
            query=query,
            # links to another page of the table, to a tenant of it, and to all tenants
            page_query=urlencode({"window": report.window, **chosen, **searched}),
            row_query=urlencode({"window": report.window, **searched}),
            charts=chart_list,
            windows=list(WINDOWS),
            live_minutes=settings.ROLLOUT_LIVE_TRAFFIC_MINUTES,
        ),
        status=200 if search.is_valid() else 400,
    )
