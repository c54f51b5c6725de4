from django.contrib import admin

from core.admin import TenantOwnedAdmin
from crm.models import Contact, Conversation, Message


@admin.register(Contact)
class ContactAdmin(TenantOwnedAdmin):
    show_full_result_count = False  # a filtered page counts its rows only
    list_display = ["__str__", "tenant", "email", "external_id", "created_at"]
    search_fields = ["name", "email", "external_id", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant"]


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["created_at", "direction", "sender_type", "text", "client_message_id"]
    readonly_fields = fields
    can_delete = False


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
    inlines = [MessageInline]


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
