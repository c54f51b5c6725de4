from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from bots.services import conversation_status_set
from core.exceptions import InvalidRequest
from core.text import MAX_TEXT, ascii_digits
from crm.models import ConversationStatus
from crm.selectors import (
    conversation_get,
    conversation_list,
    conversation_sessions,
    conversation_workspace_of_member,
    transcript_page,
)
from support.services import conversation_is_mirrored, staff_reply
from tenants.access import tenant_view
from tenants.models import Role
from webchat.models import WebChatSite

PAGE_SIZE = 25


class ConversationFilterForm(forms.Form):
    """The transcripts list's filters (GET); a bad value is a field error, never a 500."""

    status = forms.ChoiceField(choices=[("", "Any"), *ConversationStatus.choices], required=False)
    date_from = forms.DateField(
        required=False, label="Started from", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="to", widget=forms.DateInput(attrs={"type": "date"})
    )
    handoff = forms.ChoiceField(
        choices=[("", "Any"), ("yes", "Handed off"), ("no", "Never handed off")],
        required=False,
        label="Handoff",
    )
    site = forms.ModelChoiceField(
        queryset=WebChatSite.objects.none(), required=False, empty_label="Any site"
    )
    q = forms.CharField(required=False, max_length=200, label="Search")

    def __init__(self, *args, tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = WebChatSite.objects.filter(tenant=tenant).order_by("name")

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def filters(self) -> dict:
        """Selector arguments from the valid fields (invalid ones are left out)."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        handoff = {"yes": True, "no": False}.get(data.get("handoff") or "")
        site = data.get("site")
        return {
            "status": data.get("status") or None,
            "search": (data.get("q") or "").strip() or None,
            "date_from": data.get("date_from"),
            "date_to": data.get("date_to") if "date_to" not in self.errors else None,
            "handoff": handoff,
            "site_id": site.pk if site else None,
        }


@tenant_view()
def conversations(request):
    form = ConversationFilterForm(request.GET, tenant=request.tenant)
    form.is_valid()
    page = Paginator(
        conversation_list(tenant=request.tenant, **form.filters()), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    keep = {
        name: request.GET.get(name, "")[:200]
        for name in form.fields
        if request.GET.get(name) and name not in form.errors
    }
    return render(
        request,
        "crm/conversations.html",
        {
            "page": page,
            "form": form,
            "filter_query": urlencode(keep),
            "filtered": bool(keep),
            # kept for templates and tests that read them
            "status": form.filters()["status"] or "",
            "q": form.filters()["search"] or "",
            "statuses": ConversationStatus.choices,
        },
    )


class ReplyForm(forms.Form):
    text = forms.CharField(
        label="Reply to the visitor",
        error_messages={"required": "Write a reply first."},
        max_length=MAX_TEXT * 2,  # the service counts after stripping control characters
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": MAX_TEXT}),
    )


@tenant_view()
def conversation_detail(request, conversation_id: int):
    try:
        conversation = conversation_get(tenant=request.tenant, conversation_id=conversation_id)
    except Http404:
        workspace = conversation_workspace_of_member(
            user=request.user, conversation_id=conversation_id
        )
        if workspace is None:
            raise
        # In another of the user's workspaces: offer to switch there (a POST, as always).
        return render(
            request,
            "crm/conversation_elsewhere.html",
            {"workspace": workspace, "next": request.get_full_path()},
            status=404,
        )
    return _detail(request, conversation, ReplyForm())


def _detail(request, conversation, reply_form: ReplyForm, status: int = 200):
    can_work = request.membership.has_role(Role.AGENT)
    before = request.GET.get("before", "")
    page = transcript_page(
        conversation=conversation,
        before=int(before) if ascii_digits(before) and len(before) <= 18 else None,
    )
    mirrored = conversation_is_mirrored(conversation=conversation)
    return render(
        request,
        "crm/conversation_detail.html",
        {
            "conversation": conversation,
            "page": page,
            "rows": page.rows,
            "sessions": conversation_sessions(conversation=conversation),
            "statuses": ConversationStatus.choices,
            "can_work": can_work,
            "mirrored": mirrored,
            "can_reply": can_work and conversation.channel == "web" and not mirrored,
            "reply_form": reply_form,
        },
        status=status,
    )


@tenant_view(write=Role.AGENT)
@require_POST
def conversation_reply(request, conversation_id: int):
    conversation = conversation_get(tenant=request.tenant, conversation_id=conversation_id)
    form = ReplyForm(request.POST)
    if form.is_valid():
        try:
            staff_reply(
                conversation=conversation, user=request.user, text=form.cleaned_data["text"]
            )
        except InvalidRequest as exc:
            form.add_error("text", exc.message)
        else:
            messages.success(request, "Reply sent: the visitor sees it in the chat.")
            return redirect("crm:conversation", conversation_id=conversation.pk)
    return _detail(request, conversation, form, status=400)


@tenant_view(write=Role.AGENT)
@require_POST
def conversation_status(request, conversation_id: int):
    conversation = conversation_get(tenant=request.tenant, conversation_id=conversation_id)
    try:
        conversation_status_set(conversation=conversation, status=request.POST.get("status", ""))
    except InvalidRequest as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Status updated.")
    return redirect("crm:conversation", conversation_id=conversation.pk)
