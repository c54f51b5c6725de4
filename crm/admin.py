from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from core.admin import TenantOwnedAdmin
from crm.models import Contact, Conversation, Message


@admin.register(Contact)
class ContactAdmin(TenantOwnedAdmin):
    show_full_result_count = False  # a filtered page counts its rows only
    list_display = ["__str__", "tenant", "email", "external_id", "created_at"]
    search_fields = ["name", "email", "external_id", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant"]
    ordering = ["-id"]  # pages (the list, autocomplete) need a stable order


# A conversation page shows its latest messages; the rest are a link away (a long
# conversation as one inline formset took seconds and megabytes).
INLINE_MESSAGES = 50


@admin.register(Conversation)
class ConversationAdmin(TenantOwnedAdmin):
    show_full_result_count = False  # a filtered page counts its rows only
    tenant_scoped_fields = ("contact", "bot")
    list_display = ["id", "tenant", "channel", "channel_id", "status", "contact", "last_message_at"]
    list_filter = ["channel", "status"]
    search_fields = [
        "id",
        "channel_id",
        "external_session_id",
        "contact__email",
        "tenant__name",
        "tenant__slug",
    ]
    list_select_related = ["tenant", "contact"]
    raw_id_fields = ["contact", "bot"]
    readonly_fields = ["latest_messages"]

    @admin.display(description="messages")
    def latest_messages(self, obj: Conversation) -> str:
        if obj.pk is None:
            return "-"
        messages = list(
            Message.objects.filter(tenant_id=obj.tenant_id, conversation=obj).order_by("-id")[
                : INLINE_MESSAGES + 1
            ]
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (m.created_at.strftime("%Y-%m-%d %H:%M:%S"), m.direction, m.sender_type, m.text)
                for m in reversed(messages[:INLINE_MESSAGES])
            ),
        )
        every = reverse("admin:crm_message_changelist") + f"?conversation__id__exact={obj.pk}"
        more = (
            format_html(
                '<p>Only the latest {}: <a href="{}">all messages</a></p>', INLINE_MESSAGES, every
            )
            if len(messages) > INLINE_MESSAGES
            else ""
        )
        return format_html("<table>{}</table>{}", rows, more)


@admin.register(Message)
class MessageAdmin(TenantOwnedAdmin):
    tenant_scoped_fields = ("conversation",)
    show_full_result_count = False
    list_display = [
        "id",
        "tenant",
        "conversation",
        "direction",
        "sender_type",
        "short_text",
        "created_at",
    ]
    list_filter = ["direction", "sender_type"]
    search_fields = ["text", "client_message_id", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant", "conversation"]
    raw_id_fields = ["conversation"]

    @admin.display(description="text")
    def short_text(self, obj: Message) -> str:
        return obj.text[:80]
