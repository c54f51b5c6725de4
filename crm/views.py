from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.exceptions import InvalidRequest
from crm.models import ConversationStatus
from crm.selectors import conversation_get, conversation_list, message_list
from crm.services import conversation_set_status
from tenants.access import tenant_view
from tenants.models import Role


@tenant_view()
def conversations(request):
    status = request.GET.get("status", "")
    if status not in ConversationStatus.values:
        status = ""
    search = request.GET.get("q", "").strip()[:200]
    page = Paginator(
        conversation_list(tenant=request.tenant, status=status or None, search=search or None), 25
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "crm/conversations.html",
        {"page": page, "status": status, "q": search, "statuses": ConversationStatus.choices},
    )


@tenant_view()
def conversation_detail(request, conversation_id: int):
    conversation = conversation_get(tenant=request.tenant, conversation_id=conversation_id)
    return render(
        request,
        "crm/conversation_detail.html",
        {
            "conversation": conversation,
            "messages_list": message_list(conversation=conversation),
            "statuses": ConversationStatus.choices,
            "can_work": request.membership.has_role(Role.AGENT),
        },
    )


@tenant_view(write=Role.AGENT)
@require_POST
def conversation_status(request, conversation_id: int):
    conversation = conversation_get(tenant=request.tenant, conversation_id=conversation_id)
    try:
        conversation_set_status(conversation=conversation, status=request.POST.get("status", ""))
    except InvalidRequest as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Status updated.")
    return redirect("crm:conversation", conversation_id=conversation.pk)
