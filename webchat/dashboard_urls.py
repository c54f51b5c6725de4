from django.urls import path

from webchat import views_dashboard as views

app_name = "webchat_dashboard"

urlpatterns = [
    path("", views.site_list, name="sites"),
    path("new/", views.site_new, name="new"),
    path("preview/", views.preview_frame, name="preview"),
    path("<int:site_id>/", views.site_settings, name="settings"),
    path("<int:site_id>/keys/", views.keys, name="keys"),
    path("<int:site_id>/keys/rotate/", views.key_rotate, name="key_rotate"),
    path("<int:site_id>/secret/reveal/", views.secret_reveal, name="secret_reveal"),
    path("<int:site_id>/secret/rotate/", views.secret_rotate, name="secret_rotate"),
    path("<int:site_id>/snippet/", views.snippet, name="snippet"),
    path("<int:site_id>/test/", views.harness, name="harness"),
    path("<int:site_id>/test/allow-origin/", views.harness_allow, name="harness_allow"),
    path("<int:site_id>/test/remove-origin/", views.harness_disallow, name="harness_disallow"),
    path("<int:site_id>/diagnostics/", views.diagnostics, name="diagnostics"),
]
