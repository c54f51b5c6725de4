import pytest
from django.core.cache import cache

from bots.models import FlowAction, FlowTrigger
from tenants.models import Role
from tests.factories import (
    BotFactory,
    FlowRuleFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)
from tests.factories.webchat import WebChatSiteFactory
from tests.services_check import unreachable
from tests.widget_client import WidgetClient


def pytest_sessionstart(session):
    problems = unreachable()
    if problems:
        pytest.exit("Required services are down: " + "; ".join(problems), returncode=3)


def clear_own_cache_keys() -> None:
    """Delete this run's keys only: `cache.clear()` would FLUSHDB other runs' counters too."""
    client = cache._cache.get_client(write=True)
    prefix = cache.make_key("")
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and cached decisions must not leak between tests."""
    clear_own_cache_keys()
    yield


@pytest.fixture
def tenant(db):
    return TenantFactory(name="Northwind")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(name="Other Co")


def _member(tenant, role):
    return MembershipFactory(tenant=tenant, role=role).user


@pytest.fixture
def owner(tenant):
    return _member(tenant, Role.OWNER)


@pytest.fixture
def admin_user(tenant):
    return _member(tenant, Role.ADMIN)


@pytest.fixture
def agent(tenant):
    return _member(tenant, Role.AGENT)


@pytest.fixture
def viewer(tenant):
    return _member(tenant, Role.VIEWER)


@pytest.fixture
def outsider(db):
    return UserFactory()


@pytest.fixture
def bot(tenant):
    return BotFactory(tenant=tenant, name="Helper")


@pytest.fixture
def site(tenant, bot):
    return WebChatSiteFactory(tenant=tenant, bot=bot, name="Main shop")


@pytest.fixture
def widget_client(client, site):
    return WidgetClient(client, site.site_key)


@pytest.fixture
def superuser(db):
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def superuser_client(client, superuser):
    """The Django admin, as an operator sees it."""
    client.force_login(superuser)
    return client


@pytest.fixture
def flow_bot(bot):
    """The site's bot answers 'pricing' questions from a flow, instantly."""
    FlowRuleFactory(
        bot=bot,
        tenant=bot.tenant,
        trigger=FlowTrigger.KEYWORD,
        pattern="pricing",
        action=FlowAction.REPLY,
        reply_text="Plans start at $9 a month.",
    )
    return bot
