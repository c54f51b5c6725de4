from django.urls import path

from webchat.api import public

app_name = "webchat_api"

urlpatterns = [
    path("config", public.ConfigApi.as_view(), name="config"),
    path("init", public.InitApi.as_view(), name="init"),
    path("messages", public.MessagesApi.as_view(), name="messages"),
    path("events", public.EventsApi.as_view(), name="events"),
]
