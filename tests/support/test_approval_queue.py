"""Runbook group 6: approval queue insertion and decisions (4 tests), plus the dashboard
page: roles, htmx, cross-tenant 404s, and a reply that fails to send."""

from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from core.exceptions import InvalidRequest
from support import services
from support.exceptions import ApprovalNotPending
from support.models import ApprovalItem, ApprovalStatus, ChatwootConversationLink, OutboundRetry
from tests.factories.support import ApprovalItemFactory, ChatwootConversationLinkFactory
from tests.support.conftest import SHIPPING_QUESTION

MESSAGES_ROUTE = "POST /api/v1/accounts/*/conversations/*/messages"


@pytest.fixture
def conv(chatwoot_standin):
    return chatwoot_standin.seed_conversation(contact_name="Jane Customer")


@pytest.fixture
def item(connection, post_webhook, chatwoot_standin, conv, articles) -> ApprovalItem:
    payload = chatwoot_standin.make_webhook(
        "message_created", conversation_id=conv["id"], content=SHIPPING_QUESTION
    )
    assert post_webhook(payload).status_code == 200
    chatwoot_standin.clear_requests()
    return ApprovalItem.objects.get(chatwoot_message_id=payload["id"])


def _run_on_commit(fn, *args, **kwargs):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return fn(*args, **kwargs)


def _public_replies(standin, conv):
    return [
        m
        for m in standin.messages(conv["id"])
        if m["message_type"] == "outgoing" and not m["private"]
    ]


# --- group 6 -------------------------------------------------------------------------------------


def test_customer_message_is_inserted_into_the_queue_with_its_sla_deadline(item, connection):
    assert item.status == ApprovalStatus.PENDING
    assert item.tenant_id == connection.tenant_id
    assert item.customer_text == SHIPPING_QUESTION
    assert item.due_at == item.link.first_customer_message_at + timedelta(minutes=30)
    assert item.link.waiting_since == item.link.first_customer_message_at


def test_queue_is_ordered_by_sla_urgency(tenant, connection):
    now = timezone.now()
    link = ChatwootConversationLinkFactory(connection=connection)
    later = ApprovalItemFactory(link=link, due_at=now + timedelta(minutes=25))
    breached = ApprovalItemFactory(link=link, due_at=now - timedelta(minutes=1))
    urgent = ApprovalItemFactory(link=link, due_at=now + timedelta(minutes=3))
    from support.selectors import approval_item_list

    assert list(approval_item_list(tenant=tenant, status="open")) == [breached, urgent, later]


def test_approve_sends_the_draft_as_a_public_reply(item, agent, chatwoot_standin, conv):
    _run_on_commit(services.approval_item_approve, item=item, actor=agent)
    [request] = chatwoot_standin.requests_to(MESSAGES_ROUTE)
    assert request.json["private"] is False and request.json["message_type"] == "outgoing"
    assert request.json["content"] == item.draft_text
    item.refresh_from_db()
    assert item.status == ApprovalStatus.SENT and item.decided_by == agent
    assert item.reply_message_id == _public_replies(chatwoot_standin, conv)[0]["id"]
    link = ChatwootConversationLink.objects.get(pk=item.link_id)
    assert link.first_response_at is not None and link.waiting_since is None
    assert link.breached_at is None


def test_edit_then_approve_sends_the_edited_reply(item, agent, chatwoot_standin, conv):
    edited = "Hi Jane! Standard shipping is $6.95 (free over $75)."
    _run_on_commit(services.approval_item_approve, item=item, actor=agent, text=edited)
    item.refresh_from_db()
    assert item.edited and item.final_text == edited
    assert [m["content"] for m in _public_replies(chatwoot_standin, conv)] == [edited]


def test_reject_needs_a_reason_and_sends_nothing(item, agent, chatwoot_standin):
    with pytest.raises(InvalidRequest):
        services.approval_item_reject(item=item, actor=agent, reason="  ")
    services.approval_item_reject(item=item, actor=agent, reason="Wrong article: ask about size")
    item.refresh_from_db()
    assert item.status == ApprovalStatus.REJECTED
    assert item.reject_reason == "Wrong article: ask about size"
    assert not chatwoot_standin.requests_to(MESSAGES_ROUTE)
    with pytest.raises(ApprovalNotPending):
        services.approval_item_approve(item=item, actor=agent)


def test_an_empty_draft_must_be_written_before_approval(item, agent):
    item.draft_text = ""
    item.save()
    with pytest.raises(InvalidRequest):
        services.approval_item_approve(item=item, actor=agent)
    _run_on_commit(services.approval_item_approve, item=item, actor=agent, text="Let me check.")
    item.refresh_from_db()
    assert item.status == ApprovalStatus.SENT


def test_a_reply_that_cannot_be_sent_waits_in_the_retry_queue(item, agent, chatwoot_standin, conv):
    chatwoot_standin.set_fault("status", status=502, route=MESSAGES_ROUTE)
    _run_on_commit(services.approval_item_approve, item=item, actor=agent)
    item.refresh_from_db()
    assert item.status == ApprovalStatus.APPROVED
    retry = OutboundRetry.objects.get(operation="reply")
    chatwoot_standin.clear_faults()
    services.retry_run(retry=retry)
    item.refresh_from_db()
    assert item.status == ApprovalStatus.SENT
    assert len(_public_replies(chatwoot_standin, conv)) == 1


def test_a_reply_whose_bookkeeping_failed_is_not_posted_again(
    item, agent, chatwoot_standin, conv, monkeypatch
):
    """The reply reached Chatwoot, then the database failed before it was marked sent: the
    send task's own retry (on OperationalError, not a Chatwoot retry) finds it instead of
    posting it a second time."""
    from django.db import OperationalError

    services.approval_item_approve(item=item, actor=agent)  # its on-commit send not run
    lock = services._item_lock
    failures = []

    def failing_once(locked):
        if not failures:
            failures.append(locked.pk)
            raise OperationalError("server closed the connection unexpectedly")
        return lock(locked)

    monkeypatch.setattr(services, "_item_lock", failing_once)
    with pytest.raises(OperationalError):
        services.approval_item_send(item_id=item.pk)
    assert len(_public_replies(chatwoot_standin, conv)) == 1
    assert services.approval_item_send(item_id=item.pk) is True  # what the task retry runs
    [reply] = _public_replies(chatwoot_standin, conv)
    item.refresh_from_db()
    assert item.status == ApprovalStatus.SENT
    assert item.reply_message_id == reply["id"]
    assert item.reply_attempted_at is not None


def test_a_first_send_posts_without_looking_first(item, agent, chatwoot_standin, conv):
    _run_on_commit(services.approval_item_approve, item=item, actor=agent)
    lookups = chatwoot_standin.requests_to("GET /api/v1/accounts/*/conversations/*/messages")
    assert lookups == []
    assert len(_public_replies(chatwoot_standin, conv)) == 1


# --- the dashboard page ------------------------------------------------------------------------------


def _shown(response) -> list[int]:
    return [row["item"].pk for row in response.context["rows"]]


def test_the_queue_pages_and_shows_the_latest_decided_first(client, agent, connection, monkeypatch):
    from support import views

    link = ChatwootConversationLinkFactory(connection=connection)
    now = timezone.now()
    sent = [
        ApprovalItemFactory(
            link=link, status=ApprovalStatus.SENT, received_at=now - timedelta(minutes=n)
        )
        for n in range(5)
    ]
    client.force_login(agent)
    monkeypatch.setattr(views, "QUEUE_PAGE_SIZE", 2)
    first = client.get("/support/approvals/", {"status": "sent"})
    second = client.get("/support/approvals/", {"status": "sent", "after": sent[1].pk})
    last = client.get("/support/approvals/", {"status": "sent", "after": sent[3].pk})
    assert _shown(first) == [sent[0].pk, sent[1].pk]
    assert _shown(second) == [sent[2].pk, sent[3].pk]
    assert _shown(last) == [sent[4].pk]
    assert f'?status=sent&amp;after={sent[1].pk}">Next</a>' in first.content.decode()
    assert "Previous" not in first.content.decode()
    assert f'?status=sent&amp;before={sent[2].pk}">Previous</a>' in second.content.decode()
    assert f'?status=sent&amp;after={sent[3].pk}">Next</a>' in second.content.decode()
    assert "Next</a>" not in last.content.decode()
    back = client.get("/support/approvals/", {"status": "sent", "before": sent[4].pk})
    assert _shown(back) == [sent[2].pk, sent[3].pk]
    assert "Next</a>" in back.content.decode() and "Previous</a>" in back.content.decode()


def _open_items(connection, n: int) -> list[ApprovalItem]:
    """`n` waiting items, most urgent first; the first two share a deadline (id breaks it)."""
    link = ChatwootConversationLinkFactory(connection=connection)
    now = timezone.now()
    due = [now + timedelta(minutes=max(i, 1)) for i in range(n)]
    return [ApprovalItemFactory(link=link, due_at=at) for at in due]


@pytest.mark.parametrize("decide", ["approve", "reject"])
def test_deciding_items_on_one_page_skips_none_on_the_next(
    client, agent, connection, monkeypatch, decide
):
    """The operator works page 1 (htmx: the rows change in place), then follows Next: the
    next page starts right after page 1's last row, as it was shown, not at an offset that
    the decided rows have moved."""
    from support import views

    items = _open_items(connection, 5)
    client.force_login(agent)
    monkeypatch.setattr(views, "QUEUE_PAGE_SIZE", 2)
    first = client.get("/support/approvals/")
    assert _shown(first) == [items[0].pk, items[1].pk]
    for item in items[:2]:
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = client.post(
                f"/support/approvals/{item.pk}/{decide}/",
                {"reason": "Off topic"},
                HTTP_HX_REQUEST="true",
            )
        assert response.status_code == 200
        item.refresh_from_db()
        assert item.status != ApprovalStatus.PENDING
    next_link = f'?status=open&amp;after={items[1].pk}">Next</a>'
    assert next_link in first.content.decode()
    second = client.get("/support/approvals/", {"status": "open", "after": items[1].pk})
    assert _shown(second) == [items[2].pk, items[3].pk]
    third = client.get("/support/approvals/", {"status": "open", "after": items[3].pk})
    assert _shown(third) == [items[4].pk]
    # Back from page 2: page 1 lost its decided rows, so the first page fills up again.
    back = client.get("/support/approvals/", {"status": "open", "before": items[2].pk})
    assert _shown(back) == [items[2].pk, items[3].pk]
    assert "Previous" not in back.content.decode()


def test_keyset_pages_follow_the_queue_order_through_equal_deadlines(tenant, connection):
    from support.selectors import approval_item_page

    link = ChatwootConversationLinkFactory(connection=connection)
    due = timezone.now() + timedelta(minutes=10)
    same = [ApprovalItemFactory(link=link, due_at=due) for _ in range(5)]
    seen, after = [], None
    while True:
        page = approval_item_page(tenant=tenant, status="open", after=after, size=2)
        seen += [item.pk for item in page.items]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [item.pk for item in same]


def test_a_page_after_a_decided_last_row_still_starts_after_it(tenant, connection, agent):
    """The cursor is the last row shown; approving it takes it out of the open list, and
    the next page still starts right after where it stood."""
    from support.selectors import approval_item_page

    items = _open_items(connection, 4)
    services.approval_item_reject(item=items[1], actor=agent, reason="Wrong article")
    page = approval_item_page(tenant=tenant, status="open", after=items[1].pk, size=2)
    assert [item.pk for item in page.items] == [items[2].pk, items[3].pk]
    assert page.previous_before == items[2].pk and page.next_after is None


def test_an_empty_page_after_the_end_links_back_to_the_first(client, agent, connection):
    items = _open_items(connection, 2)
    client.force_login(agent)
    response = client.get("/support/approvals/", {"after": items[1].pk})
    assert response.status_code == 200 and _shown(response) == []
    assert '?status=open">First page</a>' in response.content.decode()


BAD_CURSORS = [
    "abc",
    "-1",
    "0",
    "1.5",
    "1e3",
    " 1",
    "9" * 19,
    "9" * 400,
    "99999999999999999",  # a number, but no item
    "\x00",
    "1\x00",
    "\u0661\u0662",  # Arabic-Indic digits: int() reads 12
    "\u00b2",  # superscript two: isdigit() but not int()
    "",
]


@pytest.mark.parametrize("param", ["after", "before"])
@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_bad_cursor_gives_the_first_page(client, agent, connection, monkeypatch, param, cursor):
    from support import views

    items = _open_items(connection, 3)
    client.force_login(agent)
    monkeypatch.setattr(views, "QUEUE_PAGE_SIZE", 2)
    response = client.get("/support/approvals/", {param: cursor, "status": "open"})
    assert response.status_code == 200
    assert _shown(response) == [items[0].pk, items[1].pk]


def test_another_tenants_item_as_a_cursor_gives_the_first_page(
    client, agent, connection, other_tenant, monkeypatch
):
    """Its position would tell its deadline: it is treated as an unknown id."""
    from support import views

    mine = _open_items(connection, 3)
    theirs = ApprovalItemFactory(
        link__connection__tenant=other_tenant, due_at=mine[1].due_at + timedelta(seconds=1)
    )
    client.force_login(agent)
    monkeypatch.setattr(views, "QUEUE_PAGE_SIZE", 2)
    for param in ("after", "before"):
        response = client.get("/support/approvals/", {param: theirs.pk})
        assert _shown(response) == [mine[0].pk, mine[1].pk]


def test_a_queue_page_costs_a_fixed_number_of_queries(
    client, agent, connection, django_assert_max_num_queries
):
    items = _open_items(connection, 30)
    client.force_login(agent)
    client.get("/support/approvals/")  # session and membership warmed
    with django_assert_max_num_queries(7) as first:
        client.get("/support/approvals/")
    with django_assert_max_num_queries(len(first) + 2):
        client.get("/support/approvals/", {"after": items[9].pk})


def test_agents_see_the_queue_with_levels(client, agent, item):
    client.force_login(agent)
    response = client.get("/support/approvals/")
    assert response.status_code == 200
    body = response.content.decode()
    assert SHIPPING_QUESTION.replace("?", "") in body and "$6.95" in body
    assert "lvl-normal" in body and "Approve" in body


def test_agent_approves_through_the_page_and_htmx(client, agent, item, chatwoot_standin):
    client.force_login(agent)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(f"/support/approvals/{item.pk}/approve/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert f'id="item-{item.pk}"' in response.content.decode()
    item.refresh_from_db()
    assert item.status == ApprovalStatus.SENT
    again = client.post(f"/support/approvals/{item.pk}/approve/")
    assert again.status_code == 400  # plain form post: the item's page with the error
    assert "This draft is already sent." in again.content.decode()
    assert len(chatwoot_standin.requests_to(MESSAGES_ROUTE)) == 1


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain post"])
def test_a_refused_decision_keeps_what_the_agent_typed(client, agent, item, htmx):
    client.force_login(agent)
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    edited = "Standard shipping is $6.95 " + "and more " * 2000  # over the 10,000 limit
    response = client.post(f"/support/approvals/{item.pk}/approve/", {"text": edited}, **headers)
    page = response.content.decode()
    assert response.status_code == (200 if htmx else 400)
    assert "longer than 10000 characters" in page
    assert edited.strip() in page  # in the textarea, not lost
    response = client.post(
        f"/support/approvals/{item.pk}/reject/", {"reason": "x" * 1001}, **headers
    )
    assert f'value="{"x" * 1001}"' in response.content.decode()
    item.refresh_from_db()
    assert item.status == ApprovalStatus.PENDING


@pytest.fixture
def two_items(connection):
    """Two waiting items of one Chatwoot conversation."""
    link = ChatwootConversationLinkFactory(connection=connection)
    return ApprovalItemFactory(link=link), ApprovalItemFactory(link=link)


def test_nul_in_a_reply_or_a_reason_is_dropped_not_a_500(client, agent, two_items):
    first, second = two_items
    client.force_login(agent)
    response = client.post(f"/support/approvals/{first.pk}/reject/", {"reason": "spam\x00bot"})
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.reject_reason == "spambot"
    response = client.post(f"/support/approvals/{second.pk}/approve/", {"text": "Hi\x00 there"})
    assert response.status_code == 302
    second.refresh_from_db()
    assert second.final_text == "Hi there"


def test_agent_edits_and_rejects_through_the_page(client, agent, two_items):
    first, second = two_items
    client.force_login(agent)
    response = client.post(f"/support/approvals/{first.pk}/reject/", {"reason": "Off topic"})
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.status == ApprovalStatus.REJECTED
    response = client.post(
        f"/support/approvals/{second.pk}/reject/", {"reason": ""}, HTTP_HX_REQUEST="true"
    )
    assert "Give a reason" in response.content.decode()
    second.refresh_from_db()
    assert second.status == ApprovalStatus.PENDING


def test_viewers_read_but_cannot_decide(client, viewer, item):
    client.force_login(viewer)
    assert client.get("/support/approvals/").status_code == 200
    assert client.get(f"/support/approvals/{item.pk}/").status_code == 200
    assert client.post(f"/support/approvals/{item.pk}/approve/").status_code == 403
    assert client.post(f"/support/approvals/{item.pk}/reject/", {"reason": "x"}).status_code == 403
    item.refresh_from_db()
    assert item.status == ApprovalStatus.PENDING


def test_another_tenants_item_is_a_404(client, other_tenant, item):
    from tests.factories import MembershipFactory

    stranger = MembershipFactory(tenant=other_tenant, role="owner").user
    client.force_login(stranger)
    assert client.get(f"/support/approvals/{item.pk}/").status_code == 404
    assert client.post(f"/support/approvals/{item.pk}/approve/").status_code == 404
    assert client.post(f"/support/approvals/{item.pk}/reject/", {"reason": "x"}).status_code == 404
    assert SHIPPING_QUESTION not in client.get("/support/approvals/").content.decode()
    item.refresh_from_db()
    assert item.status == ApprovalStatus.PENDING


def test_anonymous_users_are_sent_to_login(client, item):
    response = client.get("/support/approvals/")
    assert response.status_code == 302 and "/login/" in response["Location"]
