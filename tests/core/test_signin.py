"""Sign-in brute-force limits on the dashboard's /login/ and the admin's login: failed
attempts count, per address, per account from one address and per account from anywhere."""

import pytest

from core.signin import THROTTLED
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


@pytest.fixture
def limits(settings):
    settings.SIGNIN_RATE_IP = "8/h"
    settings.SIGNIN_RATE_ACCOUNT = "3/h"
    settings.SIGNIN_RATE_ACCOUNT_ANY_IP = "6/h"
    return settings


def member(email: str, **fields):
    user = UserFactory(email=email, username=email, **fields)
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(client, username: str, password: str, *, url: str = "/login/", ip: str = "10.0.0.1"):
    client.logout()
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


def refused(response) -> bool:
    return THROTTLED in response.content.decode()


def signed_in_as(client):
    return client.session.get("_auth_user_id")


def test_an_account_is_locked_for_the_guessing_address_only(client, limits):
    owner = member("owner@example.com")
    for _ in range(3):
        assert not refused(sign_in(client, "owner@example.com", "guess"))
    # past its limit the guessing address is refused even the right password...
    assert refused(sign_in(client, "OWNER@example.com", PASSWORD))
    assert signed_in_as(client) is None
    # ...while the owner, from their own address, signs in
    assert sign_in(client, "owner@example.com", PASSWORD, ip="10.9.9.9").status_code == 302
    assert signed_in_as(client) == str(owner.pk)


def test_guesses_from_many_addresses_meet_a_higher_ceiling(client, limits):
    member("owner@example.com")
    for n in range(6):
        assert not refused(sign_in(client, "owner@example.com", "guess", ip=f"10.1.0.{n}"))
    assert refused(sign_in(client, "owner@example.com", PASSWORD, ip="10.2.0.1"))


def test_signing_in_often_never_locks_anyone_out(client, limits):
    owner = member("owner@example.com")
    for _ in range(12):  # past every limit, were successes counted
        assert sign_in(client, "owner@example.com", PASSWORD).status_code == 302
    assert signed_in_as(client) == str(owner.pk)


def test_one_address_guessing_many_accounts_is_refused(client, limits):
    for n in range(8):
        assert not refused(sign_in(client, f"user{n}@example.com", "guess"))
    assert refused(sign_in(client, "user9@example.com", "guess"))
    assert not refused(sign_in(client, "user9@example.com", "guess", ip="10.0.0.2"))


def test_the_admin_login_has_the_same_limits(client, limits):
    member("ops@example.com", is_staff=True, is_superuser=True)
    for _ in range(3):
        sign_in(client, "ops@example.com", "guess", url="/admin/login/")
    assert refused(sign_in(client, "ops@example.com", PASSWORD, url="/admin/login/"))
    assert signed_in_as(client) is None
