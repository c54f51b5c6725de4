"""One person is one Chatwoot contact: every handed-off conversation of the same crm Contact
(a verified user, a customer who gave their email) goes under the same Chatwoot contact,
each through a contact inbox of its own; an anonymous visitor's conversation keeps a
contact of its own. Crash recovery and existing links work as before."""

import re

import pytest

from crm.models import Contact, Conversation, ConversationStatus, Message
from support import services
from support.models import ChatwootConversationLink, OutboundRetry, RetryStatus
from support.services import installation_namespace
from support.tasks import sync_handoff
from tests.support.conftest import HUMAN, incoming_texts
from tests.support.test_handoff_recovery import SimulatedCrash, _crash_once_when_storing
from tests.widget_client import WidgetClient
from webchat.tokens import identity_hash

UPDATE_ROUTE = "PUT /api/v1/accounts/*/contacts/*"
CONTACT_INBOX_ROUTE = "POST /api/v1/accounts/*/contacts/*/contact_inboxes"


def _visit(client, site, *, user_id: str = "") -> WidgetClient:
    """A new visit (another device, or days later): a widget with no session to resume."""
    widget = WidgetClient(client, site.site_key)
    identity = {"user_id": user_id, "user_hash": identity_hash(site.identity_secret, user_id)}
    assert widget.init(**(identity if user_id else {})).status_code == 200
    return widget


def _hand_off(widget: WidgetClient, first: str) -> Conversation:
    assert widget.send(first).status_code == 201
    assert widget.send(HUMAN).status_code == 201
    conversation = Conversation.objects.get(pk=widget.conversation_id)
    assert conversation.status == ConversationStatus.HANDOFF
    return conversation


def _link(conversation: Conversation) -> ChatwootConversationLink:
    return ChatwootConversationLink.objects.get(conversation=conversation)


def test_a_verified_user_handing_off_twice_is_one_contact_with_two_conversations(
    client, site, connection, chatwoot_standin
):
    first = _visit(client, site, user_id="cust-42")
    one = _hand_off(first, "Where is order A?")
    person = Contact.objects.get(tenant=site.tenant, external_id="cust-42")
    assert one.contact_id == person.pk
    # Between the visits they told us who they are.
    person.name, person.email = "Ann Lee", "Ann@Example.com"
    person.save()
    second = _visit(client, site, user_id="cust-42")
    two = _hand_off(second, "And order B?")
    assert two.pk != one.pk and two.contact_id == person.pk
    assert first.send("Order A is 1001").status_code == 201

    [contact] = chatwoot_standin.contacts
    ours = f"replybase:{installation_namespace()}:{site.tenant_id}"
    assert contact["identifier"] == f"{ours}:contact:{person.pk}"
    assert (contact["name"], contact["email"]) == ("Ann Lee", "ann@example.com")
    assert contact["additional_attributes"]["replybase_contact_id"] == person.pk
    by_ours = {c["custom_attributes"]["replybase_id"]: c for c in chatwoot_standin.conversations}
    cw_one = by_ours[f"{ours}:conversation:{one.pk}"]
    cw_two = by_ours[f"{ours}:conversation:{two.pk}"]
    assert len(by_ours) == 2 and cw_one["contact_id"] == cw_two["contact_id"] == contact["id"]
    link_one, link_two = _link(one), _link(two)
    assert (link_one.chatwoot_contact_id, link_one.chatwoot_conversation_id) == (
        contact["id"],
        cw_one["id"],
    )
    assert (link_two.chatwoot_contact_id, link_two.chatwoot_conversation_id) == (
        contact["id"],
        cw_two["id"],
    )
    # Each conversation through a contact inbox of its own, its messages in it alone.
    inboxes = {ci["id"]: ci for ci in chatwoot_standin.contact_inboxes}
    assert inboxes[cw_one["contact_inbox_id"]]["source_id"] == link_one.contact_source_id
    assert inboxes[cw_two["contact_inbox_id"]]["source_id"] == link_two.contact_source_id
    assert link_one.contact_source_id != link_two.contact_source_id
    transcript_one, transcript_two = (
        incoming_texts(chatwoot_standin, cw_one["id"]),
        incoming_texts(chatwoot_standin, cw_two["id"]),
    )
    assert transcript_one[0] == "Where is order A?" and transcript_one[-1] == "Order A is 1001"
    assert transcript_two[0] == "And order B?"
    assert len(transcript_one) == one.messages.count()
    assert len(transcript_two) == two.messages.count()


def test_a_customer_known_by_email_is_one_contact(
    widget_client, client, site, connection, chatwoot_standin
):
    person = Contact.objects.create(tenant=site.tenant, email="bob@example.com")
    conversations = []
    for visit, text in ((widget_client, "Hi"), (WidgetClient(client, site.site_key), "Me again")):
        assert visit.init().status_code == 200
        Conversation.objects.filter(pk=visit.conversation_id).update(contact=person)
        conversations.append(_hand_off(visit, text))

    [contact] = chatwoot_standin.contacts
    assert (contact["name"], contact["email"]) == ("bob@example.com", "bob@example.com")
    assert {c["contact_id"] for c in chatwoot_standin.conversations} == {contact["id"]}
    assert len(chatwoot_standin.conversations) == 2
    assert not chatwoot_standin.requests_to(UPDATE_ROUTE)  # nothing changed: nothing sent


def test_anonymous_visitors_each_get_their_own_contact(client, site, connection, chatwoot_standin):
    conversations = [_hand_off(_visit(client, site), text) for text in ("Hi", "Hello")]

    identifiers = sorted(c["identifier"] for c in chatwoot_standin.contacts)
    ours = f"replybase:{installation_namespace()}:{site.tenant_id}"
    assert identifiers == sorted(f"{ours}:conversation:{c.pk}" for c in conversations)
    assert len({c["contact_id"] for c in chatwoot_standin.conversations}) == 2
    for conversation in conversations:
        link = _link(conversation)
        [cw] = [
            c for c in chatwoot_standin.conversations if c["id"] == link.chatwoot_conversation_id
        ]
        assert cw["contact_id"] == link.chatwoot_contact_id
        assert incoming_texts(chatwoot_standin, cw["id"])[0] in ("Hi", "Hello")
    assert not chatwoot_standin.requests_to(CONTACT_INBOX_ROUTE)  # made with each contact


@pytest.mark.parametrize("field", ["chatwoot_contact_id", "chatwoot_conversation_id"])
def test_a_crash_in_the_second_handoff_makes_nothing_twice(
    client, site, connection, chatwoot_standin, monkeypatch, field
):
    one = _hand_off(_visit(client, site, user_id="cust-7"), "First visit")
    crashed = _crash_once_when_storing(monkeypatch, field)
    second = _visit(client, site, user_id="cust-7")
    assert second.send("Second visit").status_code == 201
    with pytest.raises(SimulatedCrash):
        second.send(HUMAN)  # the eager mirror task dies inside the request
    assert crashed == [field]
    two = Conversation.objects.get(pk=second.conversation_id)

    assert sync_handoff.delay(conversation_id=two.pk).get() is True
    assert second.send("Still there?").status_code == 201

    [contact] = chatwoot_standin.contacts
    assert len(chatwoot_standin.conversations) == 2
    link_two = _link(two)
    assert link_two.chatwoot_contact_id == _link(one).chatwoot_contact_id == contact["id"]
    # One contact inbox per conversation: the retry found the one it may have made.
    assert sorted(ci["source_id"] for ci in chatwoot_standin.contact_inboxes) == sorted(
        [_link(one).contact_source_id, link_two.contact_source_id]
    )
    transcript = incoming_texts(chatwoot_standin, link_two.chatwoot_conversation_id)
    assert transcript[0] == "Second visit" and transcript[-1] == "Still there?"
    assert len(transcript) == len(set(transcript)) == two.messages.count()
    assert not OutboundRetry.objects.filter(status=RetryStatus.QUEUED).exists()


def test_an_email_another_chatwoot_contact_has_is_kept_as_an_attribute_on_update(
    client, site, connection, chatwoot_standin
):
    _hand_off(_visit(client, site, user_id="cust-9"), "First visit")
    chatwoot_standin.seed_conversation(contact_name="Agent-made", email="cara@example.com")
    Contact.objects.filter(external_id="cust-9").update(name="Cara", email="cara@example.com")

    two = _hand_off(_visit(client, site, user_id="cust-9"), "Second visit")

    [ours] = [c for c in chatwoot_standin.contacts if c["identifier"]]
    assert ours["name"] == "Cara" and ours["email"] is None
    assert ours["additional_attributes"]["email"] == "cara@example.com"
    updates = chatwoot_standin.requests_to(UPDATE_ROUTE)
    assert [r.json for r in updates] == [
        {"name": "Cara", "email": "cara@example.com"},  # 422: another contact has it
        {"name": "Cara", "additional_attributes": {"email": "cara@example.com"}},
    ]
    link = _link(two)
    assert incoming_texts(chatwoot_standin, link.chatwoot_conversation_id)[0] == "Second visit"


def test_a_failing_contact_update_does_not_stop_the_handoff(
    client, site, connection, chatwoot_standin
):
    _hand_off(_visit(client, site, user_id="cust-5"), "First visit")
    Contact.objects.filter(external_id="cust-5").update(name="Dan", email="dan@example.com")
    chatwoot_standin.set_fault("status", status=422, route=UPDATE_ROUTE)

    two = _hand_off(_visit(client, site, user_id="cust-5"), "Second visit")

    assert len(chatwoot_standin.requests_to(UPDATE_ROUTE)) == 2  # as is, then email kept aside
    [contact] = chatwoot_standin.contacts
    link = _link(two)
    assert link.chatwoot_contact_id == contact["id"]
    transcript = incoming_texts(chatwoot_standin, link.chatwoot_conversation_id)
    assert transcript[0] == "Second visit" and len(transcript) == two.messages.count()
    assert not OutboundRetry.objects.filter(operation="handoff_sync").exists()


@pytest.mark.parametrize("mirrored", [True, False])
def test_a_link_to_an_old_per_conversation_contact_keeps_working(
    widget_client, site, connection, chatwoot_standin, mirrored
):
    """Mirrored before contacts were shared: its contact stays, nothing is looked up again;
    one that stopped before its conversation gets it under that same contact."""
    assert widget_client.init().status_code == 200
    conversation = Conversation.objects.get(pk=widget_client.conversation_id)
    conversation.contact = Contact.objects.create(tenant=site.tenant, name="Eve")
    conversation.save()
    old = chatwoot_standin.seed_conversation(contact_name="Eve", source_id="replybase-old")
    ChatwootConversationLink.objects.create(
        tenant=site.tenant,
        connection=connection,
        conversation=conversation,
        chatwoot_contact_id=old["meta"]["sender"]["id"],
        chatwoot_conversation_id=old["id"] if mirrored else None,
        contact_source_id="replybase-old",
    )
    conversation.status = ConversationStatus.HANDOFF
    conversation.save()

    assert widget_client.send("Still me").status_code == 201

    link = _link(conversation)
    assert len(chatwoot_standin.contacts) == 1
    assert link.chatwoot_contact_id == old["meta"]["sender"]["id"]
    assert len(chatwoot_standin.contact_inboxes) == 1  # its own, found again if needed
    assert not chatwoot_standin.requests_to("POST /api/v1/accounts/*/contacts/filter")
    [cw] = [c for c in chatwoot_standin.conversations if c["id"] == link.chatwoot_conversation_id]
    assert cw["contact_id"] == old["meta"]["sender"]["id"]
    assert (cw["id"] == old["id"]) is mirrored
    assert incoming_texts(chatwoot_standin, cw["id"])[-1] == "Still me"


# --- installations sharing one Chatwoot account ------------------------------------------------

KEY_A, KEY_B = "staging-" + "a" * 50, "production-" + "b" * 50


def test_two_secret_keys_give_different_identifiers(settings, tenant):
    person = Contact.objects.create(tenant=tenant, name="Ann Lee", email="ann@example.com")
    conversation = Conversation.objects.create(tenant=tenant, contact=person)
    message = Message.objects.create(
        tenant=tenant, conversation=conversation, direction="inbound", sender_type="visitor"
    )
    names = {}
    for key in (KEY_A, KEY_B):
        settings.SECRET_KEY = key
        ns = installation_namespace()
        assert re.fullmatch(r"[0-9a-f]{10}", ns), ns
        names[key] = (
            services.handoff_contact_identifier(conversation),
            services.handoff_identifier(conversation),
            services.our_source_id("msg", message.pk),
        )
        assert names[key] == (
            f"replybase:{ns}:{tenant.pk}:contact:{person.pk}",
            f"replybase:{ns}:{tenant.pk}:conversation:{conversation.pk}",
            f"replybase:{ns}:msg:{message.pk}",
        )
    assert not set(names[KEY_A]) & set(names[KEY_B])
    settings.SECRET_KEY = KEY_A
    assert services.handoff_identifier(conversation) == names[KEY_A][1]  # stable


def test_a_contact_of_another_installation_is_not_found(
    client, site, connection, chatwoot_standin, settings
):
    """Staging and production (or a reset embedded database) number their tenants,
    contacts and conversations alike: with another SECRET_KEY, the same crm ids do not
    find the other installation's Chatwoot contact, conversation or messages."""
    settings.SECRET_KEY = KEY_A
    conversation = _hand_off(_visit(client, site, user_id="cust-42"), "Where is my order?")
    [theirs] = chatwoot_standin.contacts
    [their_conversation] = chatwoot_standin.conversations
    # The other installation: the same database ids, no link of its own yet.
    ChatwootConversationLink.objects.filter(conversation=conversation).delete()
    settings.SECRET_KEY = KEY_B

    result = services.handoff_sync(conversation_id=conversation.pk)

    assert result.ok and result.posted == conversation.messages.count()
    assert len(chatwoot_standin.contacts) == 2 and len(chatwoot_standin.conversations) == 2
    assert result.link.chatwoot_contact_id != theirs["id"]
    assert result.link.chatwoot_conversation_id != their_conversation["id"]
    assert incoming_texts(chatwoot_standin, result.link.chatwoot_conversation_id) == (
        incoming_texts(chatwoot_standin, their_conversation["id"])
    )
