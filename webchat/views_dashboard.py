"""Tenant dashboard pages for webchat sites (`/integrations/webchat/`).

Viewers read every page; admins and owners create and edit sites, rotate keys, reveal or
rotate the identity secret and allow the dashboard origin for the test harness. Another
tenant's site is a 404 (`site_get_for_tenant`).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from core.exceptions import InvalidRequest
from tenants.access import tenant_view
from tenants.models import Role
from webchat import dashboard_selectors as selectors
from webchat import dashboard_services as services
from webchat.forms import ConfirmForm, PreviewForm, SiteForm
from webchat.models import WebChatSite
from webchat.tokens import identity_hash

SITE_DEFAULTS = {
    "title": "Chat with us",
    "color": "#2453d4",
    "position": "right",
    "welcome_message": "Hi! How can we help?",
    "locale": "en",
    "telemetry_enabled": True,
    "pow_difficulty": 0,
    "active": True,
}


PREVIEW_FIELDS = (
    "title",
    "color",
    "position",
    "welcome_message",
    "launcher_text",
    "require_consent",
    "locale",
)


def _preview_query(form: SiteForm) -> str:
    """The preview frame's query string for the values currently in the form."""
    values = {}
    for name in PREVIEW_FIELDS:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                values[name] = "on"
        else:
            values[name] = "" if value is None else str(value)
    return urlencode(values)


def _can_manage(request) -> bool:
    return request.membership.has_role(Role.ADMIN)


def _site(request, site_id: int) -> WebChatSite:
    return selectors.site_get_for_tenant(tenant=request.tenant, site_id=site_id)


def _site_page(request, template: str, site: WebChatSite, tab: str, **context):
    return render(
        request,
        template,
        {"site": site, "tab": tab, "can_manage": _can_manage(request), **context},
    )


@tenant_view()
def site_list(request):
    return render(
        request,
        "webchat/dashboard/site_list.html",
        {
            "statuses": selectors.site_status_list(tenant=request.tenant),
            "can_manage": _can_manage(request),
            "live_minutes": int(selectors.LIVE_WINDOW.total_seconds() // 60),
        },
    )


@tenant_view(read=Role.ADMIN, write=Role.ADMIN)
def site_new(request):
    form = SiteForm(request.POST or None, tenant=request.tenant, initial=SITE_DEFAULTS)
    if request.method == "POST" and form.is_valid():
        try:
            site = services.site_dashboard_create(
                tenant=request.tenant, actor=request.user, **form.settings()
            )
        except InvalidRequest as exc:
            form.add_error(None, exc.message)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            messages.success(request, f"Created {site.name}. Paste the snippet into your pages.")
            return redirect("webchat_dashboard:snippet", site_id=site.pk)
    return render(
        request,
        "webchat/dashboard/site_form.html",
        {
            "form": form,
            "site": None,
            "can_manage": True,
            "tab": "settings",
            "preview_query": _preview_query(form),
        },
    )


@tenant_view(read=Role.VIEWER, write=Role.ADMIN)
def site_settings(request, site_id: int):
    site = _site(request, site_id)
    form = SiteForm(request.POST or None, instance=site, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        try:
            site = services.site_settings_update(site=site, actor=request.user, **form.settings())
        except InvalidRequest as exc:
            form.add_error(None, exc.message)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            messages.success(request, "Settings saved. Live pages pick them up within a minute.")
            return redirect("webchat_dashboard:settings", site_id=site.pk)
    if not _can_manage(request):
        for field in form.fields.values():
            field.disabled = True
    return _site_page(
        request,
        "webchat/dashboard/site_form.html",
        site,
        "settings",
        form=form,
        preview_query=_preview_query(form),
    )


@xframe_options_sameorigin
@tenant_view()
def preview_frame(request):
    """The real widget code fed from form values through a simulated API (see the template)."""
    config = PreviewForm(request.GET).public_config()
    response = render(request, "webchat/dashboard/preview_frame.html", {"preview": config})
    response["Cache-Control"] = "no-store"
    return response


# --- keys ------------------------------------------------------------------------------------


def _keys_page(request, site: WebChatSite, *, secret: str = "", reveal_title: str = "", form=None):
    response = _site_page(
        request,
        "webchat/dashboard/keys.html",
        site,
        "keys",
        grace_hours=int(services.KEY_ROTATION_GRACE.total_seconds() // 3600),
        previous_key_active=bool(
            site.previous_site_key
            and site.previous_key_expires_at
            and site.previous_key_expires_at > timezone.now()
        ),
        secret=secret,
        reveal_title=reveal_title,
        confirm_form=form or ConfirmForm(),
    )
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@tenant_view()
def keys(request, site_id: int):
    return _keys_page(request, _site(request, site_id))


@tenant_view(write=Role.ADMIN)
@require_POST
def key_rotate(request, site_id: int):
    site = services.site_public_key_rotate(site=_site(request, site_id), actor=request.user)
    messages.success(
        request,
        f"New site key issued. The old key keeps working until "
        f"{site.previous_key_expires_at:%Y-%m-%d %H:%M} UTC: update your snippet before then.",
    )
    return redirect("webchat_dashboard:keys", site_id=site.pk)


@tenant_view(write=Role.ADMIN)
@require_POST
def secret_reveal(request, site_id: int):
    site = _site(request, site_id)
    form = ConfirmForm(request.POST)
    if not form.is_valid():
        return _keys_page(request, site, form=form)
    secret = services.site_identity_secret_reveal(site=site, actor=request.user)
    return _keys_page(request, site, secret=secret, reveal_title="Current identity secret.")


@tenant_view(write=Role.ADMIN)
@require_POST
def secret_rotate(request, site_id: int):
    site = _site(request, site_id)
    form = ConfirmForm(request.POST)
    if not form.is_valid():
        return _keys_page(request, site, form=form)
    site, secret = services.site_identity_secret_rotate(site=site, actor=request.user)
    return _keys_page(
        request,
        site,
        secret=secret,
        reveal_title="New identity secret: the old one stopped working just now. "
        "Put this one in your server's configuration.",
    )


# --- snippet, harness, diagnostics -------------------------------------------------------------


@tenant_view()
def snippet(request, site_id: int):
    site = _site(request, site_id)
    example_user = "user-42"
    return _site_page(
        request,
        "webchat/dashboard/snippet.html",
        site,
        "snippet",
        loader_url=selectors.loader_url(request=request),
        example_user=example_user,
        # A hash made with a throwaway secret: shows the format without leaking the real one.
        example_hash=identity_hash("example-secret", example_user),
    )


@tenant_view()
def harness(request, site_id: int):
    site = _site(request, site_id)
    origin = selectors.dashboard_origin(request=request)
    return _site_page(
        request,
        "webchat/dashboard/harness.html",
        site,
        "harness",
        origin=origin,
        origin_allowed=selectors.dashboard_origin_allowed(site=site, request=request),
        origin_rule_present=origin in site.allowed_domains,
        status=selectors.site_status_get(site=site),
    )


@tenant_view(write=Role.ADMIN)
@require_POST
def harness_allow(request, site_id: int):
    site = _site(request, site_id)
    origin = selectors.dashboard_origin(request=request)
    try:
        services.site_domain_add(site=site, rule=origin, actor=request.user)
    except InvalidRequest as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{origin} may now embed this site's widget (for testing).")
    return redirect("webchat_dashboard:harness", site_id=site.pk)


@tenant_view(write=Role.ADMIN)
@require_POST
def harness_disallow(request, site_id: int):
    site = _site(request, site_id)
    origin = selectors.dashboard_origin(request=request)
    services.site_domain_remove(site=site, rule=origin, actor=request.user)
    messages.success(request, f"Removed {origin} from the allowed domains.")
    return redirect("webchat_dashboard:harness", site_id=site.pk)


@tenant_view()
def diagnostics(request, site_id: int):
    site = _site(request, site_id)
    return _site_page(
        request,
        "webchat/dashboard/diagnostics.html",
        site,
        "diagnostics",
        diag=selectors.site_diagnostics(site=site),
        window_hours=int(selectors.INCIDENT_WINDOW.total_seconds() // 3600),
    )
