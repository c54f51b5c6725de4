from django.urls import path

from support.api.webhooks import ChatwootWebhookApi

app_name = "support_api"

urlpatterns = [
    path("<str:token>/", ChatwootWebhookApi.as_view(), name="chatwoot_webhook"),
]
