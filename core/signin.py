"""Sign-in with brute-force limits (the dashboard's /login/ and the admin's).

Each failed attempt counts against the client's address, against the account it named from
that address, and (with a higher ceiling) against the account from anywhere, in the shared
cache (django-ratelimit's fixed windows), so the limits hold across web instances. Past a
limit the form refuses with a form error before checking the password: a guessing client
learns nothing more until the window ends. Asking for a password link counts every
request the same way (each one sends an email).
"""

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django_ratelimit.core import get_usage

from webchat.ratelimits import client_ip, ip_bucket

THROTTLED = "Too many sign-in attempts. Wait a few minutes, then try again."


def _limits(request, account: str) -> list[tuple[str, str, str]]:
    """(group, counted value, rate): failures per address, per account from one address,
    and per account from anywhere (a higher ceiling: anyone can type any account's name,
    so that one alone must not lock its owner out for long)."""
    ip = ip_bucket(client_ip(request))
    return [
        ("signin:ip", ip, settings.SIGNIN_RATE_IP),
        ("signin:account-ip", f"{account}|{ip}", settings.SIGNIN_RATE_ACCOUNT),
        ("signin:account", account, settings.SIGNIN_RATE_ACCOUNT_ANY_IP),
    ]


def _usage(request, username: str, *, count: bool) -> bool:
    """Count one more (`count`) or only read; True when some limit is used up."""
    account = username.strip().lower()[:254]
    used_up = False
    for group, value, rate in _limits(request, account):
        usage = get_usage(
            request, group=group, key=lambda _g, _r, v=value: v, rate=rate, increment=count
        )
        if usage is None:  # the cache is down and RATELIMIT_FAIL_OPEN is set
            continue
        used_up |= usage["count"] > usage["limit"] if count else usage["count"] >= usage["limit"]
    return used_up


def sign_in_refused(request, username: str) -> bool:
    """Has this address, or this account from it, used up its failed sign-ins?"""
    return request is not None and _usage(request, username, count=False)


def sign_in_failed(request, username: str) -> None:
    if request is not None:
        _usage(request, username, count=True)


class ThrottledSignIn:
    """Mixin for Django's authentication forms (they keep the request as `self.request`):
    only failed attempts count, so signing in often never locks anyone out."""

    def clean(self):
        username = self.data.get("username", "")
        if sign_in_refused(self.request, username):
            raise forms.ValidationError(THROTTLED, code="throttled")
        try:
            return super().clean()
        except forms.ValidationError:
            sign_in_failed(self.request, username)
            raise


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
        # every request counts here: each one sends an email
        if _usage(self.request, form.cleaned_data["email"], count=True):
            form.add_error(None, THROTTLED)
            return self.form_invalid(form)
        return super().form_valid(form)
