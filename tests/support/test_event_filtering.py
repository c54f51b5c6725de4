"""Runbook group 2: event filtering. Customer messages and status changes are processed;
agent messages, private notes, activity/template messages, assignments and our own
API-posted messages are not drafted."""

import pytest

from support.chatwoot import events
from support.models import ApprovalItem, ChatwootConversationLink
from tests.support.conftest import deliveries


@pytest.fixture
def cw(chatwoot_standin):
    return chatwoot_standin


def _outcome(connection) -> str:
    return deliveries(connection)[-1].outcome


def _mark(payload: dict, replybase_id: str) -> None:
    """Give the webhook's conversation this custom attribute replybase_id."""
    conversation = payload.get("conversation", payload)  # a message's, or the event itself
    conversation["custom_attributes"] = {"replybase_id": replybase_id}


def test_customer_message_is_processed(connection, post_webhook, cw, articles):
    conv = cw.seed_conversation(contact_name="Jane Customer")
    payload = cw.make_webhook("message_created", kind="customer", conversation_id=conv["id"])
    assert payload["message_type"] == "incoming" and payload["sender"]["type"] == "contact"
    assert post_webhook(payload).status_code == 200
    assert _outcome(connection) == "customer_message"
    item = ApprovalItem.objects.get(connection=connection)
    assert item.chatwoot_message_id == payload["id"]
    assert item.link.chatwoot_conversation_id == conv["id"]
    assert item.link.contact_name == "Jane Customer"


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        ("agent", "agent_reply"),
        ("private_note", "ignored:private_note"),
        ("bot", "ignored:outgoing_from_agent_bot"),
        ("activity", "ignored:message_type:activity"),
        ("template", "ignored:message_type:template"),
    ],
)
def test_agent_notes_bots_activity_and_templates_are_not_drafted(
    connection, post_webhook, cw, kind, outcome
):
    conv = cw.seed_conversation()
    payload = cw.make_webhook("message_created", kind=kind, conversation_id=conv["id"])
    assert post_webhook(payload).status_code == 200
    assert _outcome(connection) == outcome
    assert not ApprovalItem.objects.exists()


def test_assignments_and_other_events_are_ignored(connection, post_webhook, cw):
    conv = cw.seed_conversation()
    updated = cw.make_webhook("conversation_updated", conversation_id=conv["id"])
    updated["changed_attributes"] = [{"assignee_id": {"previous_value": None, "current_value": 1}}]
    assert post_webhook(updated).status_code == 200
    assert _outcome(connection) == "ignored:event:conversation_updated"
    created = cw.make_webhook("conversation_created", conversation_id=conv["id"])
    assert post_webhook(created).status_code == 200
    assert _outcome(connection) == "ignored:event:conversation_created"
    assert post_webhook({"event": "webwidget_triggered"}).status_code == 200
    assert not ApprovalItem.objects.exists()


def test_conversation_status_changed_is_processed(connection, post_webhook, cw, articles):
    conv = cw.seed_conversation()
    post_webhook(cw.make_webhook("message_created", conversation_id=conv["id"]))
    payload = cw.make_webhook(
        "conversation_status_changed", conversation_id=conv["id"], status="resolved"
    )
    assert "account" not in payload
    assert payload["changed_attributes"] == [
        {"status": {"previous_value": "open", "current_value": "resolved"}}
    ]
    assert post_webhook(payload).status_code == 200
    assert _outcome(connection) == "status:resolved"
    link = ChatwootConversationLink.objects.get(chatwoot_conversation_id=conv["id"])
    assert link.status == "resolved" and link.resolved_at is not None
    assert ApprovalItem.objects.get(link=link).status == "superseded"


def test_our_own_messages_are_recognised_by_source_id(connection, post_webhook, cw):
    conv = cw.seed_conversation()
    echo = cw.make_webhook(
        "message_created", kind="customer", conversation_id=conv["id"], source_id="replybase:msg:7"
    )
    assert post_webhook(echo).status_code == 200
    assert _outcome(connection) == "ignored:own_message"
    assert not ApprovalItem.objects.exists()


def test_decided_by_message_type_when_sender_type_is_missing(
    connection, post_webhook, cw, articles
):
    conv = cw.seed_conversation()
    payload = cw.make_webhook("message_created", kind="customer", conversation_id=conv["id"])
    payload["sender"] = {"id": 1, "name": "Jane"}  # no "type"
    assert post_webhook(payload).status_code == 200
    assert _outcome(connection) == "customer_message"
    note = cw.make_webhook("message_created", kind="private_note", conversation_id=conv["id"])
    note.pop("sender")
    post_webhook(note)
    assert _outcome(connection) == "ignored:private_note"
    assert ApprovalItem.objects.count() == 1


def test_messages_of_another_account_are_ignored(connection, post_webhook, cw):
    payload = cw.make_webhook("message_created")
    payload["account"] = {"id": 99, "name": "Someone else"}
    post_webhook(payload)
    assert _outcome(connection) == "ignored:other_account"


@pytest.mark.parametrize("whose", ["another tenant", "another installation"])
@pytest.mark.parametrize("event", ["message_created", "conversation_status_changed"])
def test_a_conversation_another_tenant_mirrored_into_a_shared_account_is_ignored(
    connection, post_webhook, cw, whose, event
):
    from support.services import installation_namespace

    namespace = installation_namespace() if whose == "another tenant" else "elsewhere"
    tenant_id = connection.tenant_id + (1 if whose == "another tenant" else 0)
    conv = cw.seed_conversation()
    payload = cw.make_webhook(event, kind="customer", conversation_id=conv["id"])
    _mark(payload, f"replybase:{namespace}:{tenant_id}:conversation:5")
    post_webhook(payload)
    assert _outcome(connection) == "ignored:other_tenants_conversation"
    assert not ApprovalItem.objects.exists()
    assert not ChatwootConversationLink.objects.exists()


def test_a_conversation_this_connection_follows_stays_ours_under_any_identifier(
    connection, post_webhook, cw, articles
):
    """Mirrored before the installation namespace (or under an older SECRET_KEY)."""
    conv = cw.seed_conversation()
    ChatwootConversationLink.objects.create(
        tenant=connection.tenant, connection=connection, chatwoot_conversation_id=conv["id"]
    )
    payload = cw.make_webhook("message_created", kind="customer", conversation_id=conv["id"])
    _mark(payload, f"replybase:{connection.tenant_id}:conversation:5")  # the old form
    post_webhook(payload)
    assert _outcome(connection) == "customer_message"


def test_a_conversation_with_an_agents_own_replybase_id_is_processed(
    connection, post_webhook, cw, articles
):
    conv = cw.seed_conversation()
    payload = cw.make_webhook("message_created", kind="customer", conversation_id=conv["id"])
    _mark(payload, "VIP-7")
    post_webhook(payload)
    assert _outcome(connection) == "customer_message"


def test_parse_accepts_integer_message_types_and_epoch_times():
    payload = {
        "event": "message_created",
        "id": 5,
        "message_type": 0,
        "private": False,
        "content": " Hello ",
        "created_at": 1_700_000_000,
        "conversation": {"id": 9, "status": "open"},
    }
    parsed = events.parse(payload, account_id=1)
    assert isinstance(parsed, events.CustomerMessage)
    assert parsed.content == "Hello" and parsed.created_at.year == 2023
    assert events.parse({**payload, "message_type": 1}, account_id=1) == events.AgentReply(
        9, 5, "Hello", parsed.created_at, ""
    )
    assert events.parse({**payload, "message_type": 2}, account_id=1) == events.Ignored(
        "message_type:activity"
    )
    assert events.parse([], account_id=1) == events.Ignored("not_an_object")
    assert events.parse({**payload, "conversation": {}}, account_id=1) == events.Ignored("no_ids")


@pytest.mark.parametrize("odd", ["\u00b2", "1\u0663", "9" * 25, -3, 2**64, "0"])
def test_ids_that_are_no_id_are_ignored_not_a_crash(odd):
    """Digits to str.isdigit() that int() refuses, or ids past a bigint column."""
    payload = {
        "event": "message_created",
        "id": odd,
        "message_type": odd if isinstance(odd, str) else 0,
        "private": False,
        "content": "Hello",
        "conversation": {"id": odd, "status": "open"},
    }
    assert events.parse(payload, account_id=1) == events.Ignored("no_ids")


def test_parse_status_change_without_changed_attributes_uses_status():
    parsed = events.parse(
        {"event": "conversation_status_changed", "id": 3, "status": "open"}, account_id=1
    )
    assert parsed == events.StatusChange(3, None, "open", "")
