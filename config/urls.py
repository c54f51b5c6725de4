from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from core import views as core_views
from core.signin import AdminSignInForm, PasswordLinkView, SignInForm
from webchat import views as webchat_views

admin.site.login_form = AdminSignInForm

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", core_views.metrics, name="metrics"),
    path("admin/", include("rollout.urls")),  # operator screens, before the admin site
    path("admin/", admin.site.urls),
    path("api/webchat/v1/", include("webchat.urls")),
    path("api/webhooks/chatwoot/", include("support.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("login/", auth_views.LoginView.as_view(authentication_form=SignInForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("login/password/", PasswordLinkView.as_view(), name="password_reset"),
    path(
        "login/password/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "login/password/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "login/password/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("demo/", webchat_views.demo_page, name="demo"),
    path("dashboard/", include("tenants.urls")),
    path("conversations/", include("crm.urls")),
    path("support/", include("support.urls")),
    path("integrations/webchat/", include("webchat.dashboard_urls")),
    path("bots/", include("bots.urls")),
    path("", RedirectView.as_view(pattern_name="dashboard:home", permanent=False)),
]

handler400 = "core.errors.bad_request"
handler403 = "core.errors.permission_denied"
handler404 = "core.errors.not_found"
handler500 = "core.errors.server_error"
