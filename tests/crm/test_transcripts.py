"""Transcripts: the conversations list (filters, search) and the conversation view."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm.models import Contact, Conversation, ConversationStatus, Direction, SenderType
from tests.factories import (
    BotFactory,
    ConversationFactory,
    FlowRuleFactory,
    KnowledgeArticleFactory,
    MessageFactory,
)
from tests.factories.webchat import WebChatSiteFactory
from webchat.models import WebChatSession


def _session(site, conversation, **fields):
    now = timezone.now()
    return WebChatSession.objects.create(
        tenant=site.tenant,
        site=site,
        conversation=conversation,
        visitor_id=f"visitor{conversation.pk:08d}",
        last_seen_at=now,
        expires_at=now + timedelta(hours=2),
        **fields,
    )


def _ids(response) -> list[int]:
    return [c.pk for c in response.context["page"]]


@pytest.fixture
def world(tenant, other_tenant, site):
    """Three conversations of the tenant on two sites, and one of another tenant."""
    second = WebChatSiteFactory(tenant=tenant, name="Blog")
    now = timezone.now()
    ada = Contact.objects.create(tenant=tenant, name="Ada", email="ada@example.com")
    a = ConversationFactory(tenant=tenant, contact=ada, last_message_at=now)
    b = ConversationFactory(
        tenant=tenant,
        status=ConversationStatus.HANDOFF,
        handed_off_at=now,
        last_message_at=now - timedelta(hours=1),
    )
    c = ConversationFactory(
        tenant=tenant,
        status=ConversationStatus.RESOLVED,
        handed_off_at=now - timedelta(days=3),
        resolved_at=now,
    )
    Conversation.objects.filter(pk=c.pk).update(created_at=now - timedelta(days=10))
    _session(site, a)
    _session(site, b)
    _session(second, c)
    MessageFactory(conversation=a, text="Where is my parcel?")
    MessageFactory(conversation=b, text="I want a refund")
    MessageFactory(conversation=b, text="now please")
    theirs = ConversationFactory(tenant=other_tenant)
    MessageFactory(conversation=theirs, text="Where is my parcel?")
    return {"a": a, "b": b, "c": c, "site": site, "second": second, "theirs": theirs}


@pytest.mark.django_db
def test_filters_and_search(client, viewer, world):
    a, b, c = world["a"], world["b"], world["c"]
    client.force_login(viewer)
    url = reverse("crm:conversations")
    today = timezone.localdate()

    def ids(**params):
        response = client.get(url, params)
        assert response.status_code == 200
        assert not response.context["form"].errors, response.context["form"].errors
        return _ids(response)

    assert ids() == [a.pk, b.pk, c.pk]
    assert ids(status="handoff") == [b.pk]
    assert ids(handoff="yes") == [b.pk, c.pk]
    assert ids(handoff="no") == [a.pk]
    assert ids(site=world["site"].pk) == [a.pk, b.pk]
    assert ids(site=world["second"].pk) == [c.pk]
    assert ids(date_from=today.isoformat()) == [a.pk, b.pk]
    assert ids(date_to=(today - timedelta(days=5)).isoformat()) == [c.pk]
    assert ids(q="parcel") == [a.pk]  # not the other tenant's identical message
    assert ids(q="ADA@example") == [a.pk]
    assert ids(q=str(b.pk)) == [b.pk]
    assert ids(q="refund", handoff="yes", site=world["site"].pk) == [b.pk]
    assert ids(q="nothing like this") == []
    page = client.get(url).content.decode()
    assert "Main shop" in page and "Blog" in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "exploded"}, "status"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_to": "2024-13-45"}, "date_to"),
        ({"date_from": "2025-02-01", "date_to": "2025-01-01"}, "date_to"),
        ({"handoff": "maybe"}, "handoff"),
        ({"site": "abc"}, "site"),
        ({"q": "x" * 201}, "q"),
        ({"page": "-1"}, None),
        ({"q": "\x00"}, None),
        ({"q": "\u00b2"}, None),  # a digit to str.isdigit() that int() refuses
    ],
)
def test_bad_filters_are_field_errors_never_500(client, viewer, world, params, field):
    client.force_login(viewer)
    response = client.get(reverse("crm:conversations"), params)
    assert response.status_code == 200
    if field:
        assert field in response.context["form"].errors
        # the invalid filter is ignored, the others still apply
        assert set(_ids(response)) == {world["a"].pk, world["b"].pk, world["c"].pk}


@pytest.mark.django_db
def test_site_filter_with_another_tenants_site_is_refused(client, viewer, world, other_tenant):
    foreign_site = WebChatSiteFactory(tenant=other_tenant)
    _session(foreign_site, world["theirs"])
    client.force_login(viewer)
    response = client.get(reverse("crm:conversations"), {"site": foreign_site.pk})
    assert "site" in response.context["form"].errors
    assert world["theirs"].pk not in _ids(response)


@pytest.mark.django_db
def test_pagination_keeps_filters(client, tenant, viewer, site):
    for _ in range(27):
        conversation = ConversationFactory(tenant=tenant, status=ConversationStatus.OPEN)
        _session(site, conversation)
    client.force_login(viewer)
    page = client.get(reverse("crm:conversations"), {"status": "open", "site": site.pk})
    html = page.content.decode()
    assert f"status=open&amp;site={site.pk}&amp;page=2" in html
    second = client.get(reverse("crm:conversations"), {"status": "open", "page": 2})
    assert len(second.context["page"]) == 2


@pytest.mark.django_db
def test_list_query_count_does_not_grow_with_rows(client, tenant, viewer, site):
    client.force_login(viewer)
    url = reverse("crm:conversations")

    def measure(total: int) -> int:
        while Conversation.objects.filter(tenant=tenant).count() < total:
            conversation = ConversationFactory(tenant=tenant)
            _session(site, conversation)
            MessageFactory(conversation=conversation)
        client.get(url)
        with CaptureQueriesContext(connection) as queries:
            client.get(url, {"q": "Hello"})
        return len(queries)

    assert measure(3) == measure(20)


@pytest.mark.django_db
def test_conversation_view_shows_source_and_ai_outcomes(client, tenant, other_tenant, viewer, site):
    bot = BotFactory(tenant=tenant, name="Helper bot")
    rule = FlowRuleFactory(bot=bot, name="Greeting rule")
    article = KnowledgeArticleFactory(tenant=tenant, title="Shipping times")
    foreign = KnowledgeArticleFactory(tenant=other_tenant, title="Their secret article")
    conversation = ConversationFactory(tenant=tenant, bot=bot)
    _session(
        site,
        conversation,
        origin="https://shop.example.com",
        page_url="https://shop.example.com/boots?utm_source=news",
        referrer="https://news.example.org/",
        locale="de-DE",
        utm={"source": "news", "campaign": "spring"},
        user_agent="Mozilla/5.0 Test",
    )
    MessageFactory(conversation=conversation, text="How long does shipping take?")
    MessageFactory(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        sender_type=SenderType.BOT,
        text="3 to 5 business days.",
        metadata={
            "ai_outcome": "answered",
            "confidence": 0.8123,
            "article_ids": [article.pk, foreign.pk, 999999],
            "latency_ms": 42,
        },
    )
    MessageFactory(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        sender_type=SenderType.BOT,
        text="Hi there!",
        metadata={"ai_outcome": "flow", "flow_rule_id": rule.pk, "article_ids": []},
    )
    MessageFactory(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        sender_type=SenderType.BOT,
        text="Sorry, not sure.",
        metadata={"ai_outcome": "fallback", "confidence": "junk", "article_ids": "junk"},
    )
    client.force_login(viewer)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("crm:conversation", args=[conversation.pk]))
    assert response.status_code == 200
    assert len(queries) < 15
    page = response.content.decode()
    for text in (
        "https://shop.example.com",
        "https://shop.example.com/boots?utm_source=news",
        "https://news.example.org/",
        "de-DE",
        "spring",
        "Main shop",
        "AI: answered",
        "confidence 0.81",
        "42 ms",
        "Shipping times",
        "Greeting rule",
        "AI: fallback",
        "2 deleted articles",
    ):
        assert text in page, text
    assert "Their secret article" not in page
    outcomes = [o for _m, o in response.context["rows"] if o]
    assert [o.outcome for o in outcomes] == ["answered", "flow", "fallback"]
    assert outcomes[2].confidence is None


@pytest.mark.django_db
def test_conversation_of_another_tenant_is_404(client, viewer, other_tenant):
    theirs = ConversationFactory(tenant=other_tenant)
    client.force_login(viewer)
    assert client.get(reverse("crm:conversation", args=[theirs.pk])).status_code == 404


@pytest.mark.django_db
def test_a_long_transcript_shows_its_latest_messages_and_pages_to_earlier_ones(
    client, tenant, viewer, django_assert_max_num_queries
):
    from crm.selectors import TRANSCRIPT_PAGE_SIZE
    from tests.factories import MessageFactory

    conversation = ConversationFactory(tenant=tenant)
    first = MessageFactory.create_batch(5, tenant=tenant, conversation=conversation, text="early")
    MessageFactory.create_batch(
        TRANSCRIPT_PAGE_SIZE, tenant=tenant, conversation=conversation, text="later"
    )
    client.force_login(viewer)
    url = reverse("crm:conversation", args=[conversation.pk])
    with django_assert_max_num_queries(25):
        latest = client.get(url)
    rows = [m for m, _ in latest.context["rows"]]
    assert len(rows) == TRANSCRIPT_PAGE_SIZE and {m.text for m in rows} == {"later"}
    assert rows == sorted(rows, key=lambda m: m.pk)  # oldest first, as a transcript reads
    before = latest.context["page"].earlier_before
    assert f'href="?before={before}"' in latest.content.decode()
    earlier = client.get(url, {"before": before})
    assert [m.pk for m, _ in earlier.context["rows"]] == [m.pk for m in first]
    assert earlier.context["page"].earlier_before is None
    assert "Latest messages" in earlier.content.decode()
    for odd in ("abc", "-1", "9" * 40, "\u00b2"):
        assert client.get(url, {"before": odd}).status_code == 200
