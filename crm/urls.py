from django.urls import path

from crm import views

app_name = "crm"

urlpatterns = [
    path("", views.conversations, name="conversations"),
    path("<int:conversation_id>/", views.conversation_detail, name="conversation"),
    path("<int:conversation_id>/status/", views.conversation_status, name="conversation_status"),
    path("<int:conversation_id>/reply/", views.conversation_reply, name="conversation_reply"),
]
