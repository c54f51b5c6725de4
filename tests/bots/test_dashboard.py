"""Dashboard pages for bots, flow rules and the knowledge base."""

import pytest
from django.urls import reverse

from bots.engines import knowledge_index_cache_clear
from bots.models import Bot, FlowAction, FlowRule, FlowTrigger, KnowledgeArticle
from tenants.models import Role
from tests.factories import (
    BotFactory,
    FlowRuleFactory,
    KnowledgeArticleFactory,
    MembershipFactory,
    UserFactory,
)

RANK = {Role.VIEWER: 0, Role.AGENT: 1, Role.ADMIN: 2, Role.OWNER: 3}
ROLES = [Role.VIEWER, Role.AGENT, Role.ADMIN, Role.OWNER]

SHIPPING = (
    "Shipping times",
    "Orders ship within 2 business days from our Portland warehouse. Standard delivery takes "
    "3 to 5 business days.",
)
RETURNS = (
    "Returns and refunds",
    "You can return unused items within 30 days of delivery for a full refund.",
)


@pytest.fixture(autouse=True)
def _fresh_index():
    knowledge_index_cache_clear()
    yield
    knowledge_index_cache_clear()


@pytest.fixture
def rule(bot):
    return FlowRuleFactory(bot=bot, name="Pricing", position=0)


@pytest.fixture
def article(tenant):
    return KnowledgeArticleFactory(tenant=tenant, title=SHIPPING[0], body=SHIPPING[1])


def rule_data(**overrides) -> dict:
    data = {
        "name": "Refunds",
        "trigger": FlowTrigger.KEYWORD,
        "pattern": "refund, money back",
        "action": FlowAction.REPLY,
        "reply_text": "Refunds take 5 days.",
        "quick_replies": "",
        "follow_up_text": "",
        "active": "on",
    }
    data.update(overrides)
    return data


def article_data(**overrides) -> dict:
    data = {
        "title": "Gift cards",
        "body": "Gift cards never expire.",
        "tags": "gifts, cards",
        "published": "on",
    }
    data.update(overrides)
    return data


def bot_data(**overrides) -> dict:
    data = {
        "name": "Second bot",
        "fallback_text": "Sorry!",
        "handoff_text": "A person will answer.",
        "confidence_threshold": "",
        "ai_timeout_seconds": "8",
    }
    data.update(overrides)
    return data


def requests_for(bot, rule, article):
    u = lambda name, *args: reverse(f"bots:{name}", args=args)  # noqa: E731
    b, r, a = bot.pk, rule.pk, article.pk
    return [
        ("bots", "get", u("bots"), None, Role.VIEWER, 200),
        ("bot_new", "get", u("new"), None, Role.ADMIN, 200),
        ("bot_new_post", "post", u("new"), bot_data(), Role.ADMIN, 302),
        ("bot_settings", "get", u("settings", b), None, Role.VIEWER, 200),
        (
            "bot_settings_post",
            "post",
            u("settings", b),
            bot_data(name=bot.name),
            Role.ADMIN,
            302,
        ),
        ("flows", "get", u("flows", b), None, Role.VIEWER, 200),
        ("flow_new", "get", u("flow_new", b), None, Role.ADMIN, 200),
        ("flow_new_post", "post", u("flow_new", b), rule_data(), Role.ADMIN, 302),
        ("flow_edit", "get", u("flow_edit", b, r), None, Role.VIEWER, 200),
        (
            "flow_edit_post",
            "post",
            u("flow_edit", b, r),
            rule_data(name="Pricing 2"),
            Role.ADMIN,
            302,
        ),
        ("flow_move", "post", u("flow_move", b, r), {"direction": "down"}, Role.ADMIN, 302),
        ("knowledge", "get", u("knowledge"), None, Role.VIEWER, 200),
        ("article_new", "get", u("article_new"), None, Role.ADMIN, 200),
        ("article_new_post", "post", u("article_new"), article_data(), Role.ADMIN, 302),
        ("article_edit", "get", u("article_edit", a), None, Role.VIEWER, 200),
        (
            "article_edit_post",
            "post",
            u("article_edit", a),
            article_data(title=article.title),
            Role.ADMIN,
            302,
        ),
        ("article_publish", "post", u("article_publish", a), {"published": "0"}, Role.ADMIN, 302),
        ("knowledge_try", "post", u("knowledge_try"), {"question": "shipping?"}, Role.AGENT, 200),
        # deletes last: they remove the objects the other rows use
        ("flow_delete", "post", u("flow_delete", b, r), {}, Role.ADMIN, 302),
        ("article_delete", "post", u("article_delete", a), {}, Role.ADMIN, 302),
        ("bot_delete", "post", u("delete", b), {}, Role.ADMIN, 302),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(client, tenant, bot, rule, article, role):
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    for name, method, url, data, needed, success in requests_for(bot, rule, article):
        response = getattr(client, method)(url, data or {})
        expected = success if RANK[role] >= RANK[needed] else 403
        assert response.status_code == expected, (role, name, response.status_code)
    deleted = RANK[role] >= RANK[Role.ADMIN]
    assert Bot.objects.filter(pk=bot.pk).exists() is not deleted
    assert KnowledgeArticle.objects.filter(pk=article.pk).exists() is not deleted


@pytest.mark.django_db
def test_other_tenants_objects_are_404(client, tenant, other_tenant, owner):
    bot = BotFactory(tenant=other_tenant)
    rule = FlowRuleFactory(bot=bot)
    article = KnowledgeArticleFactory(tenant=other_tenant, title="Theirs")
    client.force_login(owner)
    checked = 0
    for name, method, url, data, _needed, _ok in requests_for(bot, rule, article):
        path = url.split("/")
        if not ({str(bot.pk), str(rule.pk), str(article.pk)} & set(path)):
            continue
        assert getattr(client, method)(url, data or {}).status_code == 404, name
        checked += 1
    assert checked == 14
    assert Bot.objects.filter(pk=bot.pk).exists()
    rule.refresh_from_db()
    article.refresh_from_db()
    assert (rule.name, rule.position, article.title, article.published) == (
        rule.name,
        rule.position,
        "Theirs",
        True,
    )
    # a rule is reached only through its own bot, even within one tenant
    mine = BotFactory(tenant=tenant)
    own_rule = FlowRuleFactory(bot=BotFactory(tenant=tenant))
    url = reverse("bots:flow_edit", args=[mine.pk, own_rule.pk])
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_non_member_404_and_anonymous_login(client, bot, rule, article):
    for _name, method, url, data, _needed, _ok in requests_for(bot, rule, article):
        response = getattr(client, method)(url, data or {})
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    client.force_login(UserFactory())
    for name, method, url, data, _needed, _ok in requests_for(bot, rule, article):
        assert getattr(client, method)(url, data or {}).status_code == 404, name


@pytest.mark.django_db
def test_lists_show_only_own_tenant(client, tenant, other_tenant, viewer, bot, article):
    theirs_bot = BotFactory(tenant=other_tenant, name="Their bot")
    KnowledgeArticleFactory(tenant=other_tenant, title="Their article")
    client.force_login(viewer)
    assert list(client.get(reverse("bots:bots")).context["bots"]) == [bot]
    page = client.get(reverse("bots:knowledge"))
    assert [a.title for a in page.context["page"]] == [article.title]
    assert b"Their article" not in page.content
    form = page.context["try_form"]
    assert theirs_bot not in form.fields["bot"].queryset


# --- flows ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"trigger": FlowTrigger.REGEX, "pattern": "(unclosed"}, "pattern"),
        ({"trigger": FlowTrigger.REGEX, "pattern": ".*"}, "pattern"),
        ({"trigger": FlowTrigger.KEYWORD, "pattern": " , ,"}, "pattern"),
        ({"trigger": FlowTrigger.BUTTON, "pattern": ""}, "pattern"),
        ({"action": FlowAction.REPLY, "reply_text": ""}, "reply_text"),
        ({"action": FlowAction.QUICK_REPLIES, "quick_replies": ""}, "quick_replies"),
        ({"quick_replies": " | value only"}, "quick_replies"),
        ({"quick_replies": "\n".join(f"b{i}" for i in range(11))}, "quick_replies"),
        ({"quick_replies": "x" * 81}, "quick_replies"),
        ({"trigger": "sometimes"}, "trigger"),
        ({"action": "explode"}, "action"),
        ({"name": ""}, "name"),
        ({"reply_text": "r" * 4001}, "reply_text"),  # more than a chat message holds
        ({"action": FlowAction.COLLECT_EMAIL, "follow_up_text": "f" * 4001}, "follow_up_text"),
    ],
)
def test_flow_form_shows_model_validation_as_field_errors(client, owner, bot, overrides, field):
    client.force_login(owner)
    response = client.post(reverse("bots:flow_new", args=[bot.pk]), rule_data(**overrides))
    assert response.status_code == 200
    assert field in response.context["form"].errors, response.context["form"].errors
    assert not FlowRule.objects.filter(bot=bot).exists()


@pytest.mark.django_db
def test_flow_create_edit_reorder_delete(client, owner, bot):
    client.force_login(owner)
    new = reverse("bots:flow_new", args=[bot.pk])
    client.post(new, rule_data(name="A"))
    client.post(
        new,
        rule_data(
            name="B",
            action=FlowAction.QUICK_REPLIES,
            reply_text="Pick one",
            quick_replies="Orders | orders\nReturns",
        ),
    )
    client.post(new, rule_data(name="C", trigger=FlowTrigger.REGEX, pattern=r"order\s*#?\d+"))
    rules = list(FlowRule.objects.filter(bot=bot).order_by("position"))
    assert [(r.name, r.position) for r in rules] == [("A", 0), ("B", 1), ("C", 2)]
    assert rules[1].quick_replies == [
        {"label": "Orders", "value": "orders"},
        {"label": "Returns", "value": "Returns"},
    ]
    assert rules[0].tenant_id == bot.tenant_id
    # the edit form shows the buttons the way they are typed
    edit = client.get(reverse("bots:flow_edit", args=[bot.pk, rules[1].pk]))
    assert "Orders | orders\nReturns" in edit.content.decode()
    c = rules[2]
    move = reverse("bots:flow_move", args=[bot.pk, c.pk])
    client.post(move, {"direction": "up"})
    client.post(move, {"direction": "up"})
    client.post(move, {"direction": "up"})  # already first: no change
    assert list(
        FlowRule.objects.filter(bot=bot).order_by("position").values_list("name", flat=True)
    ) == ["C", "A", "B"]
    assert client.post(move, {"direction": "sideways"}).status_code == 302
    # htmx: the list fragment comes back (the redirect is followed)
    response = client.post(
        reverse("bots:flow_move", args=[bot.pk, c.pk]),
        {"direction": "down"},
        HTTP_HX_REQUEST="true",
        follow=True,
    )
    assert b'id="flow-list"' in response.content
    client.post(reverse("bots:flow_delete", args=[bot.pk, c.pk]))
    assert list(FlowRule.objects.filter(bot=bot).values_list("name", flat=True)) == ["A", "B"]


@pytest.mark.django_db
def test_bot_form_rejects_bad_input(client, owner, bot):
    client.force_login(owner)
    for overrides, field in [
        ({"name": bot.name.upper()}, "name"),
        ({"confidence_threshold": "1.5"}, "confidence_threshold"),
        ({"confidence_threshold": "abc"}, "confidence_threshold"),
        ({"ai_timeout_seconds": "0"}, "ai_timeout_seconds"),
        ({"ai_timeout_seconds": "61"}, "ai_timeout_seconds"),
    ]:
        response = client.post(reverse("bots:new"), bot_data(**overrides))
        assert response.status_code == 200
        assert field in response.context["form"].errors, overrides
    assert Bot.objects.count() == 1


# --- knowledge base ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_article_crud_and_publishing(client, tenant, owner, article):
    client.force_login(owner)
    assert client.post(reverse("bots:article_new"), article_data()).status_code == 302
    gift = KnowledgeArticle.objects.get(tenant=tenant, title="Gift cards")
    assert gift.tags == ["gifts", "cards"] and gift.published
    for overrides, field in [
        ({"title": article.title.lower()}, "title"),
        ({"title": ""}, "title"),
        ({"body": "   "}, "body"),
        ({"tags": ",".join(f"t{i}" for i in range(21))}, "tags"),
        ({"title": "t" * 201}, "title"),
        ({"body": "b" * 20_001}, "body"),
    ]:
        response = client.post(reverse("bots:article_new"), article_data(**overrides))
        assert response.status_code == 200
        assert field in response.context["form"].errors, overrides
    client.post(
        reverse("bots:article_edit", args=[gift.pk]),
        article_data(title="Gift cards", body="They never expire, ever.", tags=""),
    )
    gift.refresh_from_db()
    assert (gift.body, gift.tags) == ("They never expire, ever.", [])
    publish = reverse("bots:article_publish", args=[gift.pk])
    response = client.post(publish, {"published": "0", "q": "gift", "show": "published"})
    assert response["Location"] == reverse("bots:knowledge") + "?q=gift&show=published"
    gift.refresh_from_db()
    assert not gift.published
    drafts = client.get(reverse("bots:knowledge"), {"show": "drafts"}).context["page"]
    assert [a.title for a in drafts] == ["Gift cards"]
    client.post(publish, {"published": "1"})
    gift.refresh_from_db()
    assert gift.published
    client.post(publish, {"published": "maybe"})
    gift.refresh_from_db()
    assert gift.published
    client.post(reverse("bots:article_delete", args=[gift.pk]))
    assert not KnowledgeArticle.objects.filter(pk=gift.pk).exists()


@pytest.mark.django_db
def test_try_a_question_answers_from_own_published_articles_only(
    client, tenant, other_tenant, agent, bot
):
    KnowledgeArticleFactory(tenant=tenant, title=SHIPPING[0], body=SHIPPING[1])
    KnowledgeArticleFactory(tenant=tenant, title=RETURNS[0], body=RETURNS[1])
    # Another tenant's article answers the same question even better: it must never show.
    KnowledgeArticleFactory(
        tenant=other_tenant,
        title="Secret shipping times",
        body="Shipping times: how long does shipping take? Shipping takes one day. "
        "Orders ship the same day from the secret warehouse.",
    )
    client.force_login(agent)
    url = reverse("bots:knowledge_try")
    response = client.post(
        url, {"question": "How long does shipping take?", "bot": bot.pk}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert [t.name for t in response.templates] == ["bots/_try_result.html"]
    result = response.context["result"]
    assert result["reply"].outcome == "answered", result
    assert [a.title for a in result["articles"]] == [SHIPPING[0]]
    assert result["reply"].confidence is not None
    page = response.content.decode()
    assert "Shipping times" in page and "confidence" in page
    assert "secret" not in page.lower()
    # the other tenant's question is not answerable from this tenant's base
    response = client.post(url, {"question": "What is in the secret warehouse?"})
    assert "secret warehouse" not in response.context["result"]["reply"].text
    assert all(a.tenant_id == tenant.pk for a in response.context["result"]["articles"])
    # an unpublished article is not used either
    KnowledgeArticle.objects.filter(tenant=tenant, title=SHIPPING[0]).update(published=False)
    knowledge_index_cache_clear()
    response = client.post(url, {"question": "How long does shipping take?"})
    assert SHIPPING[0] not in [a.title for a in response.context["result"]["articles"]]


@pytest.mark.django_db
def test_try_a_question_rejects_bad_input(client, other_tenant, agent):
    client.force_login(agent)
    url = reverse("bots:knowledge_try")
    for data, field in [
        ({"question": ""}, "question"),
        ({"question": "   "}, "question"),
        ({"question": "q" * 501}, "question"),
        ({"question": "hi", "bot": BotFactory(tenant=other_tenant).pk}, "bot"),
        ({"question": "hi", "bot": "abc"}, "bot"),
    ]:
        response = client.post(url, data, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        assert field in response.context["try_form"].errors
        assert response.context["result"] is None
    # without htmx the whole page comes back with the result
    response = client.post(url, {"question": "hello there"})
    assert response.templates[0].name == "bots/knowledge.html"


@pytest.mark.django_db
def test_a_search_with_a_nul_byte_is_a_search_not_a_500(client, viewer, article):
    client.force_login(viewer)
    response = client.get(reverse("bots:knowledge"), {"q": article.title[:4] + "\x00"})
    assert response.status_code == 200
    assert [a.title for a in response.context["page"]] == [article.title]
