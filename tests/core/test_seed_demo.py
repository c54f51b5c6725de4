"""`manage.py seed_demo`: only on a demo install, and never resets an existing operator."""

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from rollout.models import Mode
from rollout.selectors import policy_read
from tenants.models import Tenant
from tests.factories.rollout import RolloutPolicyFactory

User = get_user_model()

pytestmark = pytest.mark.django_db


def seed(*args: str) -> dict:
    out = StringIO()
    call_command("seed_demo", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def production_like(settings):
    settings.DEMO_MODE = False
    settings.DEBUG = False


@pytest.fixture
def demo_mode(settings):
    settings.DEMO_MODE = True


def test_refused_without_demo_mode_or_debug_and_changes_nothing(production_like):
    RolloutPolicyFactory(mode=Mode.OFF, webchat_enabled=False)  # a kill switch in force
    operator = User.objects.create_user(username="operator", password="their-own-password")
    with pytest.raises(CommandError, match="DEMO_MODE"):
        call_command("seed_demo", stdout=StringIO())
    policy = policy_read()
    assert (policy.mode, policy.webchat_enabled) == (Mode.OFF, False)
    assert not Tenant.objects.filter(slug="demo").exists()
    operator.refresh_from_db()
    assert operator.check_password("their-own-password") and not operator.is_superuser


def test_force_runs_it_anyway(production_like):
    logins = seed("--force")
    assert Tenant.objects.filter(slug=logins["tenant_slug"]).exists()
    assert User.objects.get(username="operator").check_password(logins["operator"]["password"])


def test_debug_alone_is_enough(settings):
    settings.DEMO_MODE, settings.DEBUG = False, True
    assert seed()["tenant_slug"] == "demo"


def test_fresh_install_prints_logins_that_work(demo_mode):
    logins = seed()
    owner = User.objects.get(username=logins["owner"]["email"])
    assert owner.check_password(logins["owner"]["password"])
    operator = User.objects.get(username=logins["operator"]["username"])
    assert operator.is_superuser and operator.is_staff
    assert operator.check_password(logins["operator"]["password"])


def test_a_rerun_keeps_the_operator_password(demo_mode):
    first = seed()
    again = seed()
    operator = User.objects.get(username="operator")
    assert again["operator"] == {"username": "operator", "password": None}
    assert operator.check_password(first["operator"]["password"])  # still the printed one
    owner = User.objects.get(username=again["owner"]["email"])
    assert owner.check_password(again["owner"]["password"])  # the demo owner gets a fresh one
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "Operator (admin) login: operator / the password it already had" in out.getvalue()


def test_an_existing_operator_account_is_left_alone_unless_forced(demo_mode):
    existing = User.objects.create_user(
        username="operator", email="ops@example.com", password="their-own-password"
    )
    assert seed()["operator"]["password"] is None
    existing.refresh_from_db()
    assert existing.check_password("their-own-password")
    assert (existing.email, existing.is_superuser) == ("ops@example.com", False)

    forced = seed("--force")
    existing.refresh_from_db()
    assert existing.check_password(forced["operator"]["password"])
    assert existing.is_superuser and existing.is_staff
