from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from bots.models import Bot, FlowRule, KnowledgeArticle
from core.admin import TenantOwnedAdmin


class FlowRuleInline(admin.TabularInline):
    model = FlowRule
    extra = 0
    ordering = ["position", "id"]
    fields = [
        "position",
        "name",
        "trigger",
        "pattern",
        "action",
        "reply_text",
        "quick_replies",
        "follow_up_text",
        "active",
    ]


@admin.register(Bot)
class BotAdmin(TenantOwnedAdmin):
    list_display = [
        "name",
        "tenant",
        "engine",
        "confidence_threshold",
        "ai_timeout_seconds",
        "created_at",
    ]
    list_filter = ["engine"]
    search_fields = ["name", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant"]
    inlines = [FlowRuleInline]


@admin.register(FlowRule)
class FlowRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "bot", "tenant", "position", "trigger", "pattern", "action", "active"]
    list_filter = ["trigger", "action", "active"]
    list_editable = ["position", "active"]
    search_fields = ["name", "pattern", "reply_text", "bot__name", "tenant__name", "tenant__slug"]
    list_select_related = ["bot", "tenant"]
    ordering = ["tenant__name", "bot__name", "position", "id"]
    # The tenant always follows the bot (set in FlowRule.clean/save), so it is only shown.
    readonly_fields = ["tenant"]
    autocomplete_fields = ["bot"]


@admin.register(KnowledgeArticle)
class KnowledgeArticleAdmin(TenantOwnedAdmin):
    list_display = ["title", "tenant", "published", "tag_list", "updated_at"]
    list_filter = ["published"]
    search_fields = ["title", "body", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant"]
    actions = ["publish", "unpublish"]

    @admin.display(description="tags")
    def tag_list(self, article: KnowledgeArticle) -> str:
        return ", ".join(article.tags or [])

    # Bulk updates bump updated_at so the cached retrieval indexes notice the change. They
    # change what visitors are answered from: a view-only operator must not run them (an
    # action without `permissions` is offered to anyone who can see the list).
    @admin.action(description="Publish selected articles", permissions=["change"])
    def publish(self, request: HttpRequest, queryset: QuerySet[KnowledgeArticle]) -> None:
        queryset.update(published=True, updated_at=timezone.now())

    @admin.action(description="Unpublish selected articles", permissions=["change"])
    def unpublish(self, request: HttpRequest, queryset: QuerySet[KnowledgeArticle]) -> None:
        queryset.update(published=False, updated_at=timezone.now())
