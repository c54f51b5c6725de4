"""Team invitations: the invitee chooses their own password from an emailed link; the
inviter never sees one (an account shared by tenants is opened only by its mailbox)."""

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.urls import reverse

from core.signin import THROTTLED
from tenants.models import Membership, Role
from tests.factories import MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db
User = get_user_model()
NEW_PASSWORD = "a long new passphrase 42"


def invite(client, email: str, role: str = Role.AGENT):
    return client.post(reverse("dashboard:team"), {"email": email, "role": role}, follow=True)


def link_in(message) -> str:
    [url] = re.findall(r"https?://\S+/login/password/\S+/", message.body)
    return url


def test_an_invitee_chooses_their_password_from_the_emailed_link(
    client, tenant, admin_user, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = invite(client, "New.Agent@Example.com")
    shown = " ".join(str(m) for m in response.context["messages"])
    assert "We emailed them how to sign in" in shown
    invitee = User.objects.get(username="new.agent@example.com")
    assert not invitee.has_usable_password()
    assert Membership.objects.get(user=invitee, tenant=tenant).role == Role.AGENT
    [message] = mail.outbox
    assert message.to == ["new.agent@example.com"]
    assert tenant.name in message.subject
    url = link_in(message)
    assert url.startswith("http://testserver/login/password/")

    client.logout()
    page = client.get(url, follow=True)  # Django moves the token out of the URL first
    assert page.context["validlink"]
    form_url = page.redirect_chain[-1][0]
    done = client.post(
        form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}, follow=True
    )
    assert done.redirect_chain[-1][0] == reverse("password_reset_complete")
    assert client.login(username="new.agent@example.com", password=NEW_PASSWORD)
    client.logout()
    assert not client.get(url, follow=True).context["validlink"]  # the link works once


def test_the_inviter_never_learns_a_password_even_for_an_account_shared_later(
    client, tenant, admin_user, django_capture_on_commit_callbacks
):
    """The takeover this closes: A's admin invites ceo@victim, B later makes the same
    account its owner; A's admin must not hold credentials to it."""
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = invite(client, "ceo@victim.test")
    shown = " ".join(str(m) for m in response.context["messages"])
    assert "password:" not in shown.lower()
    assert all(message.to == ["ceo@victim.test"] for message in mail.outbox)
    out = io.StringIO()
    call_command("create_tenant", "Victim Inc", "--owner-email", "ceo@victim.test", stdout=out)
    owner = User.objects.get(username="ceo@victim.test")
    assert Membership.objects.get(user=owner, tenant__name="Victim Inc").role == Role.OWNER
    assert not owner.has_usable_password()  # nobody can sign in until the mailbox chooses
    assert "has no password yet" in out.getvalue() and "Forgot your password?" in out.getvalue()


def test_an_existing_account_is_told_and_keeps_its_password(
    client, tenant, admin_user, django_capture_on_commit_callbacks
):
    elsewhere = MembershipFactory(tenant=TenantFactory(), role=Role.OWNER).user
    elsewhere.set_password(NEW_PASSWORD)
    elsewhere.save()
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = invite(client, elsewhere.email, Role.VIEWER)
    with django_capture_on_commit_callbacks(execute=True):
        new = invite(client, "nobody.yet@example.com", Role.VIEWER)
    # the inviter is told the same for an existing account and a new one
    assert [str(m).replace(elsewhere.email, "?") for m in response.context["messages"]] == [
        str(m).replace("nobody.yet@example.com", "?") for m in new.context["messages"]
    ]
    message = mail.outbox[0]
    assert message.to == [elsewhere.email] and "added you" in message.body
    assert "/login/password/" not in message.body
    elsewhere.refresh_from_db()
    assert elsewhere.check_password(NEW_PASSWORD)


def test_a_lost_invitation_is_replaced_by_forgot_password(
    client, tenant, admin_user, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        invite(client, "lost@example.com")
    client.logout()
    mail.outbox.clear()
    response = client.post(reverse("password_reset"), {"email": "LOST@example.com"})
    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == ["lost@example.com"] and "/login/password/" in message.body


def test_password_links_are_throttled(client, settings):
    settings.SIGNIN_RATE_ACCOUNT = "2/h"
    user = MembershipFactory().user
    for _ in range(2):
        assert client.post(reverse("password_reset"), {"email": user.email}).status_code == 302
    response = client.post(reverse("password_reset"), {"email": user.email})
    assert response.status_code == 200 and THROTTLED in response.content.decode()
    assert len(mail.outbox) == 2
