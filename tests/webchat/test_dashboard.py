"""Tenant dashboard for webchat sites: roles, tenant isolation, forms, keys, snippet, status."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.exceptions import InvalidRequest
from crm.models import Direction, SenderType
from rollout.models import AuditEntry
from rollout.selectors import Decision, webchat_allowed
from tenants.models import Role
from tests.factories import (
    BotFactory,
    ConversationFactory,
    KnowledgeArticleFactory,
    MembershipFactory,
    MessageFactory,
    UserFactory,
)
from tests.factories.webchat import IDENTITY_SECRET, WebChatSiteFactory
from tests.widget_client import WidgetClient
from webchat import dashboard_services
from webchat.dashboard_selectors import color_contrast, site_status_list
from webchat.models import EventType, WebChatEvent, WebChatSession, WebChatSite
from webchat.selectors import site_cache_forget, site_snapshot_for_key
from webchat.tokens import identity_hash, identity_verify

RANK = {Role.VIEWER: 0, Role.AGENT: 1, Role.ADMIN: 2, Role.OWNER: 3}
ROLES = [Role.VIEWER, Role.AGENT, Role.ADMIN, Role.OWNER]


def site_form_data(**overrides) -> dict:
    data = {
        "name": "Second shop",
        "bot": "",
        "allowed_domains": "shop2.example.com\n*.example.net",
        "title": "Help",
        "color": "#2453d4",
        "position": "right",
        "welcome_message": "Hello!",
        "launcher_text": "",
        "locale": "en",
        "telemetry_enabled": "on",
        "pow_difficulty": "0",
        "active": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def site_requests(site):
    """(name, method, url, data, role needed, success status) for every webchat page."""
    s = site.pk
    u = lambda name, *args: reverse(f"webchat_dashboard:{name}", args=args)  # noqa: E731
    return [
        ("sites", "get", u("sites"), None, Role.VIEWER, 200),
        ("new", "get", u("new"), None, Role.ADMIN, 200),
        ("new_post", "post", u("new"), site_form_data(), Role.ADMIN, 302),
        ("settings", "get", u("settings", s), None, Role.VIEWER, 200),
        (
            "settings_post",
            "post",
            u("settings", s),
            site_form_data(name=site.name, title="Renamed"),
            Role.ADMIN,
            302,
        ),
        ("preview", "get", u("preview") + "?color=%23ff0000", None, Role.VIEWER, 200),
        ("keys", "get", u("keys", s), None, Role.VIEWER, 200),
        ("key_rotate", "post", u("key_rotate", s), {}, Role.ADMIN, 302),
        ("secret_reveal", "post", u("secret_reveal", s), {"confirm": "on"}, Role.ADMIN, 200),
        ("secret_rotate", "post", u("secret_rotate", s), {"confirm": "on"}, Role.ADMIN, 200),
        ("snippet", "get", u("snippet", s), None, Role.VIEWER, 200),
        ("harness", "get", u("harness", s), None, Role.VIEWER, 200),
        ("harness_allow", "post", u("harness_allow", s), {}, Role.ADMIN, 302),
        ("harness_disallow", "post", u("harness_disallow", s), {}, Role.ADMIN, 302),
        ("diagnostics", "get", u("diagnostics", s), None, Role.VIEWER, 200),
    ]


def _login(client, tenant, role):
    user = MembershipFactory(tenant=tenant, role=role).user
    client.force_login(user)
    return user


# --- roles and tenant isolation ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(client, tenant, site, role):
    _login(client, tenant, role)
    for name, method, url, data, needed, success in site_requests(site):
        response = getattr(client, method)(url, data or {})
        expected = success if RANK[role] >= RANK[needed] else 403
        assert response.status_code == expected, (role, name, response.status_code)


@pytest.mark.django_db
def test_viewer_and_agent_change_nothing(client, tenant, site):
    before = (site.site_key, site.identity_secret, site.title, list(site.allowed_domains))
    for role in (Role.VIEWER, Role.AGENT):
        _login(client, tenant, role)
        for _name, method, url, data, _needed, _ok in site_requests(site):
            if method == "post":
                client.post(url, data or {})
    site.refresh_from_db()
    assert (site.site_key, site.identity_secret, site.title, site.allowed_domains) == before
    assert WebChatSite.objects.filter(tenant=tenant).count() == 1


@pytest.mark.django_db
def test_other_tenants_sites_are_404_everywhere(client, tenant, other_tenant, owner):
    foreign = WebChatSiteFactory(tenant=other_tenant, name="Theirs")
    before = (foreign.site_key, foreign.identity_secret, list(foreign.allowed_domains))
    client.force_login(owner)
    checked = 0
    for name, method, url, data, _needed, _ok in site_requests(foreign):
        if str(foreign.pk) not in url.split("?")[0].split("/"):
            continue  # pages without a site id
        response = getattr(client, method)(url, data or {})
        assert response.status_code == 404, name
        assert foreign.identity_secret.encode() not in response.content
        checked += 1
    assert checked == 11
    foreign.refresh_from_db()
    assert (foreign.site_key, foreign.identity_secret, foreign.allowed_domains) == before
    # ... and the list shows only the member's own sites.
    listed = [s.site for s in client.get(reverse("webchat_dashboard:sites")).context["statuses"]]
    assert foreign not in listed


@pytest.mark.django_db
def test_non_member_gets_404_and_anonymous_goes_to_login(client, site):
    for _name, method, url, data, _needed, _ok in site_requests(site):
        response = getattr(client, method)(url, data or {})
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    client.force_login(UserFactory())
    for name, method, url, data, _needed, _ok in site_requests(site):
        assert getattr(client, method)(url, data or {}).status_code == 404, name


# --- forms -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("color", "blue"),
        ("color", "#12345"),
        ("color", "#gggggg"),
        ("color", "#1234567"),
        ("allowed_domains", "*"),
        ("allowed_domains", "example.com\n*"),
        ("allowed_domains", "https://example.com/path"),
        ("allowed_domains", "*.com"),
        ("allowed_domains", "ftp://example.com"),
        ("allowed_domains", "exa_mple.com"),
        ("allowed_domains", "example.com:99999"),
        ("pow_difficulty", "21"),
        ("pow_difficulty", "-1"),
        ("pow_difficulty", "abc"),
        ("position", "top"),
        ("locale", "english!!"),
        ("title", "   "),
        ("name", ""),
        ("name", "x" * 121),
        ("welcome_message", "w" * 501),
        ("launcher_text", "l" * 41),
    ],
)
def test_site_form_rejects_bad_input_with_field_errors(client, tenant, owner, site, field, value):
    client.force_login(owner)
    for url in (
        reverse("webchat_dashboard:new"),
        reverse("webchat_dashboard:settings", args=[site.pk]),
    ):
        response = client.post(url, site_form_data(**{field: value}))
        assert response.status_code == 200, (url, response.status_code)
        assert field in response.context["form"].errors, response.context["form"].errors
    assert WebChatSite.objects.filter(tenant=tenant).count() == 1
    site.refresh_from_db()
    assert site.title != "Help"


@pytest.mark.django_db
def test_site_form_rejects_duplicate_name_and_foreign_bot(
    client, tenant, other_tenant, owner, site
):
    client.force_login(owner)
    response = client.post(reverse("webchat_dashboard:new"), site_form_data(name=site.name.upper()))
    assert "name" in response.context["form"].errors
    foreign_bot = BotFactory(tenant=other_tenant)
    response = client.post(reverse("webchat_dashboard:new"), site_form_data(bot=foreign_bot.pk))
    assert "bot" in response.context["form"].errors
    assert WebChatSite.objects.filter(bot=foreign_bot).count() == 0


@pytest.mark.django_db
def test_site_form_never_500s_on_junk(client, owner, site):
    client.force_login(owner)
    junk = ["\x00", "🙂" * 300, "<script>alert(1)</script>", "' OR 1=1 --", "9" * 40, "[]", "{}"]
    fields = list(site_form_data())
    for value in junk:
        for field in fields:
            for url in (
                reverse("webchat_dashboard:new"),
                reverse("webchat_dashboard:settings", args=[site.pk]),
            ):
                response = client.post(url, site_form_data(**{field: value}))
                if response.status_code == 200:  # refused: with an error to show
                    assert response.context["form"].errors, (field, value)
                else:  # accepted: what was stored is clean text
                    assert response.status_code == 302, (field, value)
                    for saved in WebChatSite.objects.filter(tenant=site.tenant):
                        texts = [saved.name, saved.title, saved.welcome_message, saved.locale]
                        texts += [saved.launcher_text, *saved.allowed_domains]
                        assert not any("\x00" in t for t in texts), (field, value)
                    WebChatSite.objects.exclude(pk=site.pk).delete()  # the next "new" again


@pytest.mark.django_db
def test_create_site_cleans_domains_and_gets_keys(client, tenant, owner, bot):
    client.force_login(owner)
    response = client.post(
        reverse("webchat_dashboard:new"),
        site_form_data(
            bot=bot.pk,
            allowed_domains="Shop2.Example.com, *.example.net\nshop2.example.com localhost:3000",
            color="#AABBCC",
        ),
    )
    assert response.status_code == 302
    site = WebChatSite.objects.get(tenant=tenant, name="Second shop")
    assert response["Location"] == reverse("webchat_dashboard:snippet", args=[site.pk])
    assert site.allowed_domains == ["shop2.example.com", "*.example.net", "localhost:3000"]
    assert site.color == "#aabbcc"
    assert site.bot == bot
    assert site.site_key.startswith("wk_")
    assert len(site.identity_secret) >= 32


@pytest.mark.django_db
def test_a_site_created_as_the_page_posts_it_is_on_and_answers(client, tenant, owner, bot):
    """The create page draws no "Site is on" box: what it posts has no `active` key."""
    client.force_login(owner)
    page = client.get(reverse("webchat_dashboard:new"))
    assert "active" not in page.context["form"].fields
    assert page.context["form"]["bot"].value() == bot.pk  # the tenant's bot, preselected
    response = client.post(
        reverse("webchat_dashboard:new"),
        site_form_data(active=None, bot=page.context["form"]["bot"].value()),
    )
    assert response.status_code == 302
    site = WebChatSite.objects.get(tenant=tenant, name="Second shop")
    assert site.active and site.bot == bot
    config = WidgetClient(client, site.site_key, origin="https://shop2.example.com").config()
    assert config.status_code == 200, config.content


@pytest.mark.django_db
def test_a_site_that_is_on_keeps_at_least_one_domain(client, owner, site):
    client.force_login(owner)
    url = reverse("webchat_dashboard:settings", args=[site.pk])
    before = list(site.allowed_domains)
    response = client.post(url, site_form_data(name=site.name, allowed_domains=""))
    assert response.status_code == 200
    assert "at least one domain" in response.context["form"].errors["allowed_domains"][0]
    site.refresh_from_db()
    assert site.allowed_domains == before and site.active
    # turned off, it may have none
    response = client.post(url, site_form_data(name=site.name, allowed_domains="", active=None))
    assert response.status_code == 302
    site.refresh_from_db()
    assert site.allowed_domains == [] and not site.active
    response = client.post(reverse("webchat_dashboard:new"), site_form_data(allowed_domains=""))
    assert "allowed_domains" in response.context["form"].errors


@pytest.mark.django_db
def test_settings_save_reaches_the_public_api(client, owner, site, widget_client):
    assert widget_client.config().json()["site"]["title"] != "Renamed"
    client.force_login(owner)
    response = client.post(
        reverse("webchat_dashboard:settings", args=[site.pk]),
        site_form_data(
            name=site.name,
            title="Renamed",
            allowed_domains="shop.example.com",
            color="#112233",
            position="left",
        ),
    )
    assert response.status_code == 302
    public = widget_client.config().json()["site"]
    assert (public["title"], public["color"], public["position"]) == ("Renamed", "#112233", "left")


# --- the canary flag: an operator's rollout decision, never a tenant setting ----------------------


@pytest.mark.django_db
@pytest.mark.parametrize("start", [False, True])
def test_a_posted_canary_flag_is_ignored(client, tenant, owner, site, start):
    WebChatSite.objects.filter(pk=site.pk).update(is_canary=start)
    client.force_login(owner)
    response = client.post(
        reverse("webchat_dashboard:settings", args=[site.pk]),
        site_form_data(name=site.name, title="Renamed", is_canary="" if start else "on"),
    )
    assert response.status_code == 302
    site.refresh_from_db()
    assert (site.title, site.is_canary) == ("Renamed", start)
    response = client.post(reverse("webchat_dashboard:new"), site_form_data(is_canary="on"))
    assert response.status_code == 302
    assert WebChatSite.objects.get(tenant=tenant, name="Second shop").is_canary is False
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_site_services_refuse_the_canary_flag(tenant, owner, site):
    with pytest.raises(InvalidRequest):
        dashboard_services.site_settings_update(site=site, actor=owner, is_canary=True)
    with pytest.raises(InvalidRequest):
        dashboard_services.site_dashboard_create(
            tenant=tenant, actor=owner, name="Blog", is_canary=True
        )
    site.refresh_from_db()
    assert not site.is_canary
    assert not WebChatSite.objects.filter(tenant=tenant, name="Blog").exists()


@pytest.mark.django_db
def test_settings_show_the_canary_flag_read_only(client, tenant, owner, site):
    WebChatSite.objects.filter(pk=site.pk).update(is_canary=True)
    rollout_link = reverse("rollout:tenant", args=[tenant.pk])
    client.force_login(owner)
    response = client.get(reverse("webchat_dashboard:settings", args=[site.pk]))
    assert "is_canary" not in response.context["form"].fields
    page = response.content.decode()
    assert "Canary site: <strong>yes</strong>" in page
    assert 'name="is_canary"' not in page and rollout_link not in page
    owner.is_staff = True  # an operator who is also a member sees where to change it
    owner.save(update_fields=["is_staff"])
    page = client.get(reverse("webchat_dashboard:settings", args=[site.pk])).content.decode()
    assert rollout_link + "#sites" in page


@pytest.mark.django_db
def test_contrast_warning_is_computed_server_side(client, owner, site):
    assert color_contrast("#2453d4").ok
    yellow = color_contrast("#ffff00")
    assert not yellow.ok and yellow.text_color == "#111111"
    assert "below the WCAG AA minimum" in yellow.warning
    assert color_contrast("#777777").warning.count("either") == 1  # neither text reads well
    assert color_contrast("nonsense") is None
    client.force_login(owner)
    response = client.post(
        reverse("webchat_dashboard:settings", args=[site.pk]),
        site_form_data(name=site.name, color="#ffff00", pow_difficulty="99"),
    )
    assert response.status_code == 200
    assert "White text on #ffff00 has a contrast of 1.1:1" in response.content.decode()


@pytest.mark.django_db
def test_viewer_sees_settings_read_only(client, tenant, viewer, site):
    client.force_login(viewer)
    response = client.get(reverse("webchat_dashboard:settings", args=[site.pk]))
    assert all(f.disabled for f in response.context["form"].fields.values())
    assert b"Save settings" not in response.content


# --- keys ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_key_rotation_keeps_the_old_key_for_the_grace_period(client, owner, site, widget_client):
    old = site.site_key
    client.force_login(owner)
    before = timezone.now()
    response = client.post(reverse("webchat_dashboard:key_rotate", args=[site.pk]))
    assert response.status_code == 302
    site.refresh_from_db()
    assert site.site_key != old
    assert site.previous_site_key == old
    grace = dashboard_services.KEY_ROTATION_GRACE
    assert grace == timedelta(hours=24)
    assert before + grace <= site.previous_key_expires_at <= timezone.now() + grace
    # both keys work during the grace period, through the real public API
    assert widget_client.config(site_key=old).status_code == 200
    assert widget_client.config(site_key=site.site_key).status_code == 200
    page = client.get(reverse("webchat_dashboard:keys", args=[site.pk])).content.decode()
    assert "keeps working until" in page
    assert f"{site.previous_key_expires_at:%Y-%m-%d %H:%M}" in page
    # after it the old key is refused
    WebChatSite.objects.filter(pk=site.pk).update(
        previous_key_expires_at=timezone.now() - timedelta(seconds=1)
    )
    site_cache_forget(site_id=site.pk, keys=[old, site.site_key])
    assert site_snapshot_for_key(site_key=old) is None
    assert widget_client.config(site_key=old).status_code == 404
    assert widget_client.config(site_key=site.site_key).status_code == 200
    page = client.get(reverse("webchat_dashboard:keys", args=[site.pk])).content.decode()
    assert "no longer works" in page


@pytest.mark.django_db
def test_second_rotation_ends_the_first_grace(owner, site):
    first = site.site_key
    site = dashboard_services.site_public_key_rotate(site=site, actor=owner)
    second = site.site_key
    site = dashboard_services.site_public_key_rotate(site=site, actor=owner)
    assert site_snapshot_for_key(site_key=first) is None
    assert site_snapshot_for_key(site_key=second).id == site.pk


@pytest.mark.django_db
def test_snippet_contains_the_current_key(client, viewer, owner, site):
    client.force_login(viewer)
    page = client.get(reverse("webchat_dashboard:snippet", args=[site.pk])).content.decode()
    assert f'data-site-key="{site.site_key}"' in page
    assert "http://testserver/static/webchat/loader.js" in page
    assert IDENTITY_SECRET not in page  # the example hash uses a dummy secret
    old = site.site_key
    site = dashboard_services.site_public_key_rotate(site=site, actor=owner)
    page = client.get(reverse("webchat_dashboard:snippet", args=[site.pk])).content.decode()
    assert f'data-site-key="{site.site_key}"' in page
    assert old not in page


@pytest.mark.django_db
def test_identity_secret_reveal_needs_confirmation(client, owner, site):
    client.force_login(owner)
    keys_page = client.get(reverse("webchat_dashboard:keys", args=[site.pk]))
    assert IDENTITY_SECRET.encode() not in keys_page.content
    url = reverse("webchat_dashboard:secret_reveal", args=[site.pk])
    refused = client.post(url, {})
    assert refused.status_code == 200
    assert refused.context["confirm_form"].errors["confirm"]
    assert IDENTITY_SECRET.encode() not in refused.content
    shown = client.post(url, {"confirm": "on"})
    assert IDENTITY_SECRET.encode() in shown.content
    assert "no-store" in shown["Cache-Control"]


@pytest.mark.django_db
def test_identity_secret_rotation(client, owner, site):
    client.force_login(owner)
    url = reverse("webchat_dashboard:secret_rotate", args=[site.pk])
    client.post(url, {})
    site.refresh_from_db()
    assert site.identity_secret == IDENTITY_SECRET  # no confirmation, no change
    response = client.post(url, {"confirm": "on"})
    site.refresh_from_db()
    new = site.identity_secret
    assert new != IDENTITY_SECRET
    assert new.encode() in response.content
    assert identity_verify(new, "u1", identity_hash(new, "u1"))
    assert not identity_verify(new, "u1", identity_hash(IDENTITY_SECRET, "u1"))


# --- preview and test harness --------------------------------------------------------------------


def _preview_config(response) -> dict:
    html = response.content.decode()
    start = html.index('id="rb-preview"')
    start = html.index(">", start) + 1
    return json.loads(html[start : html.index("</script>", start)])


@pytest.mark.django_db
def test_preview_frame_renders_form_values_without_the_api(client, viewer):
    client.force_login(viewer)
    url = reverse("webchat_dashboard:preview")
    response = client.get(
        url,
        {
            "title": "Hi <there>",
            "color": "#FF0000",
            "position": "left",
            "welcome_message": "Welcome!",
            "launcher_text": "Ask",
            "require_consent": "on",
        },
    )
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    config = _preview_config(response)
    assert config["title"] == "Hi <there>"
    assert (config["color"], config["position"], config["require_consent"]) == (
        "#FF0000",
        "left",
        True,
    )
    assert b"<there>" not in response.content  # escaped inside json_script
    assert b'data-site-key="preview"' in response.content
    bad = _preview_config(client.get(url, {"color": "red", "position": "top", "title": "x" * 99}))
    assert (bad["color"], bad["position"], bad["title"]) == ("#2453d4", "right", "Chat with us")


@pytest.mark.django_db
def test_harness_allows_the_dashboard_origin_on_request(client, viewer, owner, site):
    url = reverse("webchat_dashboard:harness", args=[site.pk])
    client.force_login(viewer)
    page = client.get(url)
    assert not page.context["origin_allowed"]
    assert b"webchat/loader.js" not in page.content
    assert b"Allow this dashboard origin" not in page.content  # viewers cannot
    client.force_login(owner)
    assert b"Allow this dashboard origin for testing" in client.get(url).content
    client.post(reverse("webchat_dashboard:harness_allow", args=[site.pk]))
    site.refresh_from_db()
    assert site.allowed_domains[-1] == "http://testserver"
    page = client.get(url)
    assert page.context["origin_allowed"]
    assert f'data-site-key="{site.site_key}"'.encode() in page.content
    client.post(reverse("webchat_dashboard:harness_disallow", args=[site.pk]))
    site.refresh_from_db()
    assert "http://testserver" not in site.allowed_domains
    assert site.allowed_domains == ["shop.example.com", "*.example.org"]


# --- list: status, traffic, readiness, queries ----------------------------------------------------


def _traffic(site, *, minutes_ago: int = 1):
    when = timezone.now() - timedelta(minutes=minutes_ago)
    conversation = ConversationFactory(tenant=site.tenant)
    session = WebChatSession.objects.create(
        tenant=site.tenant,
        site=site,
        visitor_id="visitor-" + str(conversation.pk),
        conversation=conversation,
        last_seen_at=when,
        expires_at=when + timedelta(hours=2),
    )
    for _ in range(2):
        MessageFactory(conversation=conversation)
    MessageFactory(
        conversation=conversation, direction=Direction.OUTBOUND, sender_type=SenderType.BOT
    )
    WebChatEvent.objects.create(
        tenant=site.tenant, site=site, session=session, type=EventType.WIDGET_LOADED
    )
    return session


@pytest.mark.django_db
def test_list_shows_rollout_traffic_and_readiness(client, tenant, viewer, site):
    KnowledgeArticleFactory(tenant=tenant)
    _traffic(site)
    bare = WebChatSiteFactory(tenant=tenant, name="Bare", allowed_domains=[])
    old = _traffic(bare, minutes_ago=30)
    WebChatSession.objects.filter(pk=old.pk).update(
        last_seen_at=timezone.now() - timedelta(minutes=30)
    )
    client.force_login(viewer)
    statuses = {
        s.site.name: s for s in client.get(reverse("webchat_dashboard:sites")).context["statuses"]
    }
    main = statuses[site.name]
    assert main.decision.allowed
    assert (main.traffic.sessions, main.traffic.messages, main.traffic.events) == (1, 3, 1)
    assert main.ready, [c for c in main.checks if not c.ok]
    other = statuses["Bare"]
    assert other.traffic.sessions == 0  # last seen 30 minutes ago
    assert other.traffic.messages == 3  # created just now (the factory's timestamps)
    assert {c.key for c in other.problems} == {"domains", "bot"}


@pytest.mark.django_db
def test_readiness_reports_each_missing_piece(tenant, monkeypatch):
    WebChatSiteFactory(tenant=tenant, allowed_domains=[], bot=None)
    # The rollout policy is another module's business: only its answer matters here.
    monkeypatch.setattr(
        "webchat.dashboard_selectors.webchat_allowed", lambda site: Decision(False, "kill_switch")
    )
    (status,) = site_status_list(tenant=tenant)
    assert not status.decision.allowed
    assert "kill_switch" in status.checks[3].detail
    assert [c.key for c in status.problems] == ["domains", "bot", "knowledge", "rollout", "init"]


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_sites(client, tenant, viewer, bot):
    client.force_login(viewer)
    url = reverse("webchat_dashboard:sites")

    def measure(n_sites: int) -> int:
        for i in range(n_sites - WebChatSite.objects.filter(tenant=tenant).count()):
            site = WebChatSiteFactory(tenant=tenant, bot=bot, name=f"Site {n_sites}-{i}")
            _traffic(site)
        for site in WebChatSite.objects.filter(tenant=tenant):
            webchat_allowed(site)  # rollout decisions are cached per site (their own module)
        client.get(url)  # session and membership lookups warm up
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert len(response.context["statuses"]) == n_sites
        return len(queries)

    assert measure(2) == measure(7)
    assert measure(7) <= 12


# --- diagnostics --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_diagnostics_shows_whatever_keys_a_visitors_telemetry_sent(client, viewer, site):
    """Event data comes from the public events route: any key, `items` included."""
    for data in [{"items": 1}, {"items": ["ab"], "keys": {"x": 1}}, {"message": "<b>hi</b>"}]:
        WebChatEvent.objects.create(
            tenant=site.tenant, site=site, type=EventType.ERROR, payload={"at": "", "data": data}
        )
    client.force_login(viewer)
    response = client.get(reverse("webchat_dashboard:diagnostics", args=[site.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert '<span class="muted">items</span> 1</span>' in page
    assert '<span class="muted">items</span> [&quot;ab&quot;]</span>' in page
    assert '<span class="muted">keys</span> {&quot;x&quot;: 1}</span>' in page
    assert "&lt;b&gt;hi&lt;/b&gt;" in page and "<b>hi</b>" not in page


@pytest.mark.django_db
def test_diagnostics_counts_refusals_with_recent_examples(client, viewer, site):
    for i in range(7):
        WebChatEvent.objects.create(
            tenant=site.tenant,
            site=site,
            type=EventType.ORIGIN_DENIED,
            payload={"origin": f"https://evil{i}.test", "route": "config"},
        )
    WebChatEvent.objects.create(
        tenant=site.tenant, site=site, type=EventType.TOKEN_INVALID, payload={"reason": "expired"}
    )
    WebChatEvent.objects.create(
        tenant=site.tenant, site=site, type=EventType.CHALLENGE_INVALID, payload={"reason": "x"}
    )
    WebChatEvent.objects.create(
        tenant=site.tenant, site=site, type=EventType.RATE_LIMITED, payload={"route": "init"}
    )
    stale = WebChatEvent.objects.create(
        tenant=site.tenant, site=site, type=EventType.RATE_LIMITED, payload={"route": "old"}
    )
    WebChatEvent.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(days=2))
    client.force_login(viewer)
    response = client.get(reverse("webchat_dashboard:diagnostics", args=[site.pk]))
    groups = {g.key: g for g in response.context["diag"].incidents}
    assert groups["blocked_origins"].count == 7
    assert len(groups["blocked_origins"].examples) == 5
    assert groups["blocked_origins"].examples[0].payload["origin"] == "https://evil6.test"
    assert groups["token_failures"].count == 2
    assert groups["rate_limits"].count == 1
    page = response.content.decode()
    assert "https://evil6.test" in page
    assert "Recent successful init" in page
