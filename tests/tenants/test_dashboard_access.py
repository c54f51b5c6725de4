"""Role × page matrix and cross-tenant matrix for the dashboard pages built so far."""

import pytest
from django.urls import reverse

from crm.models import Conversation
from tenants.access import SESSION_TENANT_KEY
from tenants.models import Membership, Role, Tenant
from tests.factories import ConversationFactory, MembershipFactory, TenantFactory, UserFactory


@pytest.fixture
def conversation(tenant):
    return ConversationFactory(tenant=tenant)


@pytest.fixture
def colleague(tenant):
    return MembershipFactory(tenant=tenant, role=Role.AGENT)


def _requests(conversation, colleague):
    """(name, method, url, data) for every dashboard action."""
    return [
        ("home", "get", reverse("dashboard:home"), None),
        ("settings", "get", reverse("dashboard:settings"), None),
        ("team", "get", reverse("dashboard:team"), None),
        ("conversations", "get", reverse("crm:conversations"), None),
        ("conversation", "get", reverse("crm:conversation", args=[conversation.pk]), None),
        (
            "settings_save",
            "post",
            reverse("dashboard:settings"),
            {"name": "Renamed", "pii_retention_days": 30},
        ),
        ("invite", "post", reverse("dashboard:team"), {"email": "new@x.test", "role": "viewer"}),
        (
            "member_role",
            "post",
            reverse("dashboard:member_role", args=[colleague.pk]),
            {"role": "viewer"},
        ),
        (
            "conversation_status",
            "post",
            reverse("crm:conversation_status", args=[conversation.pk]),
            {"status": "resolved"},
        ),
    ]


WRITE_ROLE = {
    "settings_save": Role.ADMIN,
    "invite": Role.ADMIN,
    "member_role": Role.ADMIN,
    "conversation_status": Role.AGENT,
}
RANK = {Role.VIEWER: 0, Role.AGENT: 1, Role.ADMIN: 2, Role.OWNER: 3}


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.VIEWER, Role.AGENT, Role.ADMIN, Role.OWNER])
def test_role_matrix(client, tenant, conversation, colleague, role):
    user = MembershipFactory(tenant=tenant, role=role).user
    client.force_login(user)
    for name, method, url, data in _requests(conversation, colleague):
        response = getattr(client, method)(url, data or {})
        needed = WRITE_ROLE.get(name, Role.VIEWER)
        if RANK[role] < RANK[needed]:
            assert response.status_code == 403, (role, name)
        elif method == "get":
            assert response.status_code == 200, (role, name)
        else:
            assert response.status_code == 302, (role, name)


@pytest.mark.django_db
def test_viewer_write_changes_nothing(client, tenant, viewer, conversation):
    client.force_login(viewer)
    client.post(reverse("dashboard:settings"), {"name": "Hacked", "pii_retention_days": 1})
    client.post(reverse("crm:conversation_status", args=[conversation.pk]), {"status": "resolved"})
    tenant.refresh_from_db()
    conversation.refresh_from_db()
    assert tenant.name == "Northwind"
    assert conversation.status == "open"


@pytest.mark.django_db
def test_agent_can_work_conversations_but_not_settings(client, tenant, agent, conversation):
    client.force_login(agent)
    client.post(reverse("crm:conversation_status", args=[conversation.pk]), {"status": "resolved"})
    conversation.refresh_from_db()
    assert conversation.status == "resolved"
    assert conversation.resolved_at is not None
    assert (
        client.post(
            reverse("dashboard:settings"), {"name": "X", "pii_retention_days": 5}
        ).status_code
        == 403
    )


@pytest.mark.django_db
def test_non_member_gets_404_everywhere(client, conversation, colleague):
    client.force_login(UserFactory())
    for name, method, url, data in _requests(conversation, colleague):
        response = getattr(client, method)(url, data or {})
        assert response.status_code == 404, name


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(client, conversation, colleague):
    for _name, method, url, data in _requests(conversation, colleague):
        response = getattr(client, method)(url, data or {})
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_other_tenants_objects_are_404(client, tenant, other_tenant, owner):
    foreign_conversation = ConversationFactory(tenant=other_tenant)
    foreign_member = MembershipFactory(tenant=other_tenant, role=Role.AGENT)
    client.force_login(owner)
    urls = [
        ("get", reverse("crm:conversation", args=[foreign_conversation.pk]), {}),
        (
            "post",
            reverse("crm:conversation_status", args=[foreign_conversation.pk]),
            {"status": "resolved"},
        ),
        ("post", reverse("dashboard:member_role", args=[foreign_member.pk]), {"role": "viewer"}),
        ("post", reverse("dashboard:member_remove", args=[foreign_member.pk]), {}),
    ]
    for method, url, data in urls:
        assert getattr(client, method)(url, data).status_code == 404, url
    foreign_conversation.refresh_from_db()
    assert foreign_conversation.status == "open"
    assert Membership.objects.get(pk=foreign_member.pk).role == Role.AGENT


@pytest.mark.django_db
def test_conversation_list_shows_only_own_tenant(client, tenant, other_tenant, viewer):
    mine = ConversationFactory(tenant=tenant)
    theirs = ConversationFactory(tenant=other_tenant)
    client.force_login(viewer)
    page = client.get(reverse("crm:conversations"))
    ids = [c.pk for c in page.context["page"]]
    assert ids == [mine.pk]
    assert theirs.pk not in ids


@pytest.mark.django_db
def test_tenant_switcher(client, tenant, other_tenant):
    user = UserFactory()
    MembershipFactory(user=user, tenant=tenant, role=Role.VIEWER)
    MembershipFactory(user=user, tenant=other_tenant, role=Role.ADMIN)
    stranger = Tenant.objects.create(name="Stranger", slug="stranger")
    client.force_login(user)
    # no choice yet: the first workspace by name
    assert client.get(reverse("dashboard:home")).context["current_tenant"] == tenant
    response = client.post(reverse("dashboard:switch"), {"tenant_id": other_tenant.pk})
    assert response.status_code == 302
    assert client.session[SESSION_TENANT_KEY] == other_tenant.pk
    home = client.get(reverse("dashboard:home"))
    assert home.context["current_tenant"] == other_tenant
    assert home.context["current_membership"].role == Role.ADMIN
    # switching to a tenant one is not a member of is a 404 and changes nothing
    assert client.post(reverse("dashboard:switch"), {"tenant_id": stranger.pk}).status_code == 404
    assert client.post(reverse("dashboard:switch"), {"tenant_id": "abc"}).status_code == 404
    assert client.session[SESSION_TENANT_KEY] == other_tenant.pk


@pytest.mark.django_db
def test_settings_form_rejects_bad_input(client, tenant, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("dashboard:settings"), {"name": "", "pii_retention_days": 0})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "name" in errors
    assert "pii_retention_days" in errors
    tenant.refresh_from_db()
    assert tenant.name == "Northwind"


@pytest.mark.django_db
def test_login_page_and_login(client, owner):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(
        reverse("login"), {"username": owner.username, "password": "correct-horse-battery"}
    )
    assert response.status_code == 302
    assert client.get(reverse("dashboard:home")).status_code == 200
    assert Conversation.objects.count() == 0


@pytest.mark.django_db
def test_an_admin_cannot_invite_an_owner(client, tenant, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("dashboard:team"), {"email": "alt@x.test", "role": "owner"})
    assert response.status_code == 200
    assert "Only an owner can make someone an owner." in response.context["form"].errors["role"]
    assert not Membership.objects.filter(tenant=tenant, user__email="alt@x.test").exists()


@pytest.mark.django_db
def test_staff_handing_off_from_the_dashboard_hands_off_as_the_bot_does(
    client, tenant, admin_user, django_capture_on_commit_callbacks
):
    """Through bots.conversation_handoff: the time is kept, nothing stays owed, and the
    handoff is mirrored to Chatwoot (scheduled on commit when a connection exists)."""
    from tests.factories.support import ChatwootConnectionFactory

    ChatwootConnectionFactory(tenant=tenant, base_url="http://127.0.0.1:9", inbox_id=3)
    conversation = ConversationFactory(
        tenant=tenant, bot_state={"awaiting": "email", "ai_waiting": [7]}
    )
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks() as scheduled:
        response = client.post(
            reverse("crm:conversation_status", args=[conversation.pk]), {"status": "handoff"}
        )
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.status == "handoff" and conversation.handed_off_at is not None
    assert conversation.bot_state["handoff_reason"] == "staff"
    assert "awaiting" not in conversation.bot_state and conversation.bot_state["ai_waiting"] == []
    assert len(scheduled) == 1  # the mirror into Chatwoot, queued on commit


@pytest.mark.django_db
def test_a_conversation_link_from_another_workspace_offers_to_switch(client, tenant, other_tenant):
    """An emailed link opened while another of one's workspaces is chosen."""
    user = UserFactory()
    MembershipFactory(user=user, tenant=tenant, role=Role.AGENT)
    MembershipFactory(user=user, tenant=other_tenant, role=Role.AGENT)
    theirs = ConversationFactory(tenant=other_tenant)
    stranger = ConversationFactory(tenant=TenantFactory())
    client.force_login(user)
    link = reverse("crm:conversation", args=[theirs.pk])
    page = client.get(link)
    assert page.status_code == 404
    assert page.context["workspace"] == other_tenant
    assert client.session.get(SESSION_TENANT_KEY) in (None, tenant.pk)  # nothing switched
    switched = client.post(
        reverse("dashboard:switch"), {"tenant_id": other_tenant.pk, "next": page.context["next"]}
    )
    assert switched.url == link
    assert client.get(link).context["conversation"] == theirs
    # a workspace the user is not in looks like a missing conversation
    missing = client.get(reverse("crm:conversation", args=[stranger.pk]))
    assert missing.status_code == 404 and "workspace" not in (missing.context or {})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "next_url", ["https://evil.test/", "//evil.test/x", "javascript:alert(1)", ""]
)
def test_switching_never_redirects_off_site(client, tenant, owner, next_url):
    client.force_login(owner)
    response = client.post(reverse("dashboard:switch"), {"tenant_id": tenant.pk, "next": next_url})
    assert response.url == reverse("dashboard:home")


@pytest.mark.django_db
def test_a_form_from_a_tab_of_another_workspace_saves_nothing(client, tenant, other_tenant):
    """Opened in one workspace, submitted after switching to another in a second tab."""
    user = UserFactory()
    for workspace in (tenant, other_tenant):
        MembershipFactory(user=user, tenant=workspace, role=Role.OWNER)
    client.force_login(user)
    client.post(reverse("dashboard:switch"), {"tenant_id": other_tenant.pk})
    settings_url = reverse("dashboard:settings")
    page = client.get(settings_url).content.decode()
    assert f'name="workspace" value="{other_tenant.pk}"' in page
    client.post(reverse("dashboard:switch"), {"tenant_id": tenant.pk})  # the other tab
    for url, data in (
        (settings_url, {"name": "Renamed", "pii_retention_days": 30}),
        (reverse("dashboard:team"), {"email": "new@example.com", "role": Role.ADMIN}),
    ):
        response = client.post(
            url, {**data, "workspace": other_tenant.pk}, HTTP_REFERER=f"http://testserver{url}"
        )
        assert response.status_code == 302 and response.url == f"http://testserver{url}"
        shown = [str(m) for m in client.get(url).context["messages"]]
        assert any("Nothing was saved" in m and tenant.name in m for m in shown), shown
    names = set(
        Tenant.objects.filter(pk__in=[tenant.pk, other_tenant.pk]).values_list("name", flat=True)
    )
    assert names == {tenant.name, other_tenant.name}
    assert not Membership.objects.filter(user__email="new@example.com").exists()
    # the form of the workspace chosen now saves as ever
    response = client.post(
        settings_url, {"name": "Renamed", "pii_retention_days": 30, "workspace": tenant.pk}
    )
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.name == "Renamed"


@pytest.mark.django_db
def test_every_dashboard_form_says_its_workspace(client, tenant, owner, site, bot):
    """Each form posting to a dashboard view carries the hidden workspace field."""
    import re

    from tests.factories import FlowRuleFactory, KnowledgeArticleFactory

    FlowRuleFactory(bot=bot, tenant=tenant)
    KnowledgeArticleFactory(tenant=tenant)
    client.force_login(owner)
    pages = [
        reverse("dashboard:settings"),
        reverse("dashboard:team"),
        reverse("bots:knowledge"),
        reverse("bots:flows", args=[bot.pk]),
        reverse("bots:settings", args=[bot.pk]),
        reverse("webchat_dashboard:settings", args=[site.pk]),
        reverse("webchat_dashboard:keys", args=[site.pk]),
        reverse("webchat_dashboard:harness", args=[site.pk]),
        reverse("crm:conversation", args=[ConversationFactory(tenant=tenant).pk]),
    ]
    for url in pages:
        html = client.get(url).content.decode()
        forms = re.findall(r"<form[^>]*method=\"post\".*?</form>", html, flags=re.S)
        assert forms, url
        for form in forms:
            if "dashboard/switch/" in form or "logout" in form:
                continue  # not a workspace's form
            assert f'name="workspace" value="{tenant.pk}"' in form, (url, form[:200])


@pytest.mark.django_db
def test_an_htmx_form_of_another_workspace_loads_the_home_page(client, tenant, other_tenant, bot):
    """htmx would swap a redirected page into the fragment it posts from."""
    from tests.factories import FlowRuleFactory

    user = UserFactory()
    for workspace in (tenant, other_tenant):
        MembershipFactory(user=user, tenant=workspace, role=Role.OWNER)
    rule = FlowRuleFactory(bot=bot, tenant=tenant)
    client.force_login(user)
    client.post(reverse("dashboard:switch"), {"tenant_id": tenant.pk})
    response = client.post(
        reverse("bots:flow_delete", args=[bot.pk, rule.pk]),
        {"workspace": other_tenant.pk},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("dashboard:home")
    assert type(rule).objects.filter(pk=rule.pk).exists()
