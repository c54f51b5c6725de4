from django.urls import path

from tenants import views

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path("switch/", views.switch_tenant, name="switch"),
    path("settings/", views.tenant_settings, name="settings"),
    path("team/", views.team, name="team"),
    path("team/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("team/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
]
