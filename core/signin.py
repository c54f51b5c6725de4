"""Sign-in with brute-force limits (the dashboard's /login/ and the admin's).

Each attempt counts against the client's address and against the account it names, in the
shared cache (django-ratelimit's fixed windows), so the limits hold across web instances.
Past either limit the form refuses with a form error before checking the password: a
guessing client learns nothing more until the window ends. Asking for a password link
counts the same way (each one sends an email).
"""

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django_ratelimit.core import is_ratelimited

from webchat.ratelimits import client_ip, ip_bucket

THROTTLED = "Too many sign-in attempts. Wait a few minutes, then try again."


def _by_ip(_group: str, request) -> str:
    return ip_bucket(client_ip(request))


def sign_in_refused(request, username: str) -> bool:
    """Count this attempt; True when its address or its account is past the limit."""
    if request is None:
        return False
    account = username.strip().lower()[:254]
    over_ip = is_ratelimited(
        request, group="signin:ip", key=_by_ip, rate=settings.SIGNIN_RATE_IP, increment=True
    )
    over_account = is_ratelimited(
        request,
        group="signin:account",
        key=lambda _group, _request: account,
        rate=settings.SIGNIN_RATE_ACCOUNT,
        increment=True,
    )
    return over_ip or over_account


class ThrottledSignIn:
    """Mixin for Django's authentication forms (they keep the request as `self.request`)."""

    def clean(self):
        if sign_in_refused(self.request, self.data.get("username", "")):
            raise forms.ValidationError(THROTTLED, code="throttled")
        return super().clean()


class SignInForm(ThrottledSignIn, AuthenticationForm):
    pass


class AdminSignInForm(ThrottledSignIn, AdminAuthenticationForm):
    pass


class PasswordLinkForm(PasswordResetForm):
    """ "Forgot password": also for an invited member who has not chosen one yet (Django's
    form skips accounts without a usable password, so a lost invitation could never be
    replaced)."""

    def get_users(self, email):
        users = get_user_model()._default_manager.filter(email__iexact=email, is_active=True)
        return (user for user in users.iterator() if user.email.lower() == email.lower())


class PasswordLinkView(auth_views.PasswordResetView):
    form_class = PasswordLinkForm

    def form_valid(self, form):
        if sign_in_refused(self.request, form.cleaned_data["email"]):
            form.add_error(None, THROTTLED)
            return self.form_invalid(form)
        return super().form_valid(form)
