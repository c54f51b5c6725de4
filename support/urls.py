from django.urls import path

from support import views

app_name = "support"

urlpatterns = [
    path("", views.support_home, name="home"),
    path("approvals/", views.approval_queue, name="approvals"),
    path("approvals/<int:item_id>/", views.approval_detail, name="approval"),
    path("approvals/<int:item_id>/approve/", views.approval_approve, name="approval_approve"),
    path("approvals/<int:item_id>/reject/", views.approval_reject, name="approval_reject"),
]
