from django.contrib import admin

from bots.models import Bot


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "tenant",
        "engine",
        "confidence_threshold",
        "ai_timeout_seconds",
        "created_at",
    ]
    list_filter = ["tenant", "engine"]
    search_fields = ["name", "tenant__name"]
    list_select_related = ["tenant"]
