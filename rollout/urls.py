"""Operator screens, mounted under /admin/ ahead of the admin site (see config/urls.py).

Each view is wrapped in `admin.site.admin_view`: staff only, others go to the admin login.
"""

from django.contrib import admin
from django.urls import path

from rollout import views

app_name = "rollout"

urlpatterns = [
    path("webchat-rollout", admin.site.admin_view(views.rollout_screen), name="screen"),
    path(
        "webchat-rollout/tenants/<int:tenant_id>",
        admin.site.admin_view(views.rollout_tenant),
        name="tenant",
    ),
    path("webchat-monitoring", admin.site.admin_view(views.monitoring_screen), name="monitoring"),
]
