"""Support dashboard pages: the support-health overview and the draft approval queue.

Viewers read; agents approve, edit-then-approve and reject. Another tenant's item is a 404.
The approval actions answer htmx requests with the updated row and plain form posts with
a redirect. The queue pages by keyset (`?after=` / `?before=` an item id), so rows decided
on one page move no unseen row past the next page's start.
"""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.exceptions import ApplicationError
from core.text import ascii_digits
from support import selectors, services
from support.models import ApprovalStatus
from support.sla import level_at
from tenants.access import tenant_view
from tenants.models import Role

QUEUE_FILTERS = {
    "open": "Waiting",
    ApprovalStatus.APPROVED: "Sending",
    ApprovalStatus.SENT: "Sent",
    ApprovalStatus.REJECTED: "Rejected",
    ApprovalStatus.SUPERSEDED: "Superseded",
    "all": "All",
}
QUEUE_PAGE_SIZE = selectors.APPROVAL_PAGE_SIZE


def _row(item, now, retries):
    return {"item": item, "level": level_at(item.due_at, now).value, "retry": retries.get(item.pk)}


@tenant_view(read=Role.VIEWER, write=Role.AGENT)
def support_home(request):
    now = timezone.now()
    tenant = request.tenant
    return render(
        request,
        "support/home.html",
        {
            "health": selectors.health_summaries(tenant=tenant, now=now),
            "sla": selectors.sla_overview(tenant=tenant, now=now),
            "approval_depth": selectors.approval_queue_depth(tenant=tenant),
            "retry_depth": selectors.retry_queue_depth(tenant=tenant),
            "retries": selectors.retry_list(tenant=tenant),
            "alerts": selectors.alert_list(tenant=tenant),
            "approval_limit": settings.SUPPORT_APPROVAL_QUEUE_ALERT_DEPTH,
            "retry_limit": settings.SUPPORT_RETRY_QUEUE_ALERT_DEPTH,
            "now": now,
        },
    )


def _cursor(value: str) -> int | None:
    """An item id from the query string; None for anything else (the first page)."""
    return int(value) if ascii_digits(value) and len(value) <= 18 else None


@tenant_view(read=Role.VIEWER, write=Role.AGENT)
def approval_queue(request):
    status = request.GET.get("status", "open")
    if status not in QUEUE_FILTERS:
        status = "open"
    page = selectors.approval_item_page(
        tenant=request.tenant,
        status=None if status == "all" else status,
        after=_cursor(request.GET.get("after", "")),
        before=_cursor(request.GET.get("before", "")),
        size=QUEUE_PAGE_SIZE,
    )
    now = timezone.now()
    retries = selectors.retry_state_for_items(
        tenant=request.tenant, item_ids=[item.pk for item in page.items]
    )
    counts = selectors.approval_status_counts(tenant=request.tenant)
    counts["open"] = counts[ApprovalStatus.PENDING] + counts[ApprovalStatus.DRAFTING]
    counts["all"] = sum(counts[s] for s in ApprovalStatus.values)
    return render(
        request,
        "support/approvals.html",
        {
            "rows": [_row(item, now, retries) for item in page.items],
            "page": page,
            "status": status,
            "filters": [(value, label, counts[value]) for value, label in QUEUE_FILTERS.items()],
            "can_work": request.membership.has_role(Role.AGENT),
        },
    )


def _item_page(request, item, template: str, status: int = 200, **extra):
    """The item's page or its queue row, as it is now, with `extra` in the context."""
    retries = selectors.retry_state_for_items(tenant=request.tenant, item_ids=[item.pk])
    context = {
        "row": _row(item, timezone.now(), retries),
        "item": item,
        "can_work": request.membership.has_role(Role.AGENT),
        **extra,
    }
    return render(request, template, context, status=status)


@tenant_view(read=Role.VIEWER, write=Role.AGENT)
def approval_detail(request, item_id: int):
    item = selectors.approval_item_get(tenant=request.tenant, item_id=item_id)
    return _item_page(request, item, "support/approval_detail.html")


def _after_action(request, item, *, error: str | None, success: str):
    """The row again (htmx) or the next page. A refused decision keeps what the agent
    typed (their edited reply, their reason) in the form, beside the error."""
    typed = {"typed_text": request.POST.get("text"), "typed_reason": request.POST.get("reason")}
    if request.headers.get("HX-Request"):
        item.refresh_from_db()
        if error:
            return _item_page(request, item, "support/_approval_row.html", error=error, **typed)
        return _item_page(request, item, "support/_approval_row.html", notice=success)
    if error:
        item.refresh_from_db()
        return _item_page(
            request, item, "support/approval_detail.html", status=400, error=error, **typed
        )
    messages.success(request, success)
    return redirect("support:approvals")


@tenant_view(read=Role.AGENT, write=Role.AGENT)
@require_POST
def approval_approve(request, item_id: int):
    item = selectors.approval_item_get(tenant=request.tenant, item_id=item_id)
    text = request.POST.get("text")
    try:
        services.approval_item_approve(item=item, actor=request.user, text=text)
    except ApplicationError as exc:
        return _after_action(request, item, error=exc.message, success="")
    return _after_action(request, item, error=None, success="Approved: the reply is being sent.")


@tenant_view(read=Role.AGENT, write=Role.AGENT)
@require_POST
def approval_reject(request, item_id: int):
    item = selectors.approval_item_get(tenant=request.tenant, item_id=item_id)
    try:
        services.approval_item_reject(
            item=item, actor=request.user, reason=request.POST.get("reason", "")
        )
    except ApplicationError as exc:
        return _after_action(request, item, error=exc.message, success="")
    return _after_action(request, item, error=None, success="Draft rejected.")
