"""Sign-in brute-force limits on the dashboard's /login/ and the admin's login."""

import pytest

from core.signin import THROTTLED
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


@pytest.fixture
def limits(settings):
    settings.SIGNIN_RATE_IP = "8/h"
    settings.SIGNIN_RATE_ACCOUNT = "3/h"
    return settings


def sign_in(client, username: str, password: str, *, url: str = "/login/", ip: str = "10.0.0.1"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


def signed_in_as(client):
    return client.session.get("_auth_user_id")


def test_an_account_is_locked_for_the_window_after_its_guesses(client, limits):
    user = UserFactory(email="owner@example.com", username="owner@example.com")
    user.set_password(PASSWORD)
    user.save()
    for _ in range(3):
        response = sign_in(client, "owner@example.com", "guess")
        assert response.status_code == 200 and THROTTLED not in response.content.decode()
    # past the account's limit even the right password is refused, from any address
    response = sign_in(client, "OWNER@example.com", PASSWORD, ip="10.9.9.9")
    assert THROTTLED in response.content.decode()
    assert signed_in_as(client) is None
    # another account from the first address still signs in
    other = UserFactory(email="agent@example.com", username="agent@example.com")
    other.set_password(PASSWORD)
    other.save()
    response = sign_in(client, "agent@example.com", PASSWORD)
    assert response.status_code == 302
    assert signed_in_as(client) == str(other.pk)


def test_one_address_guessing_many_accounts_is_refused(client, limits):
    for n in range(8):
        assert THROTTLED not in sign_in(client, f"user{n}@example.com", "guess").content.decode()
    assert THROTTLED in sign_in(client, "user9@example.com", "guess").content.decode()
    assert (
        THROTTLED
        not in sign_in(client, "user9@example.com", "guess", ip="10.0.0.2").content.decode()
    )


def test_the_admin_login_has_the_same_limits(client, limits):
    operator = UserFactory(
        email="ops@example.com", username="ops@example.com", is_staff=True, is_superuser=True
    )
    operator.set_password(PASSWORD)
    operator.save()
    for _ in range(3):
        sign_in(client, "ops@example.com", "guess", url="/admin/login/")
    response = sign_in(client, "ops@example.com", PASSWORD, url="/admin/login/")
    assert THROTTLED in response.content.decode()
    assert signed_in_as(client) is None
