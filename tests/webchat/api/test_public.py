import json
import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from crm.models import Contact, Conversation, ConversationStatus, Message
from rollout.models import Override, TenantRollout
from tests.conftest import clear_own_cache_keys
from tests.factories import BotFactory
from tests.factories.webchat import IDENTITY_SECRET, WebChatSiteFactory
from tests.widget_client import API, WidgetClient
from webchat.models import EventType, WebChatEvent, WebChatSession
from webchat.tokens import identity_hash

pytestmark = pytest.mark.django_db

ORIGIN = "https://shop.example.com"


def error_of(response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return response.status_code, body["error"]["code"]


def _verified(user_id: str) -> dict:
    """init's fields for a user the host page verified."""
    return {"user_id": user_id, "user_hash": identity_hash(IDENTITY_SECRET, user_id)}


# --- config ---------------------------------------------------------------------------


class TestConfig:
    def test_safe_only_payload(self, widget_client, site):
        response = widget_client.config()
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"site", "challenge", "challenge_expires_at", "pow"}
        assert body["site"] == {
            "title": site.title,
            "color": site.color,
            "position": "right",
            "welcome_message": site.welcome_message,
            "launcher_text": "",
            "require_consent": False,
            "telemetry": True,
            "locale": "en",
        }
        assert body["pow"] is None
        text = response.content.decode()
        for secret in (site.identity_secret, "example.org", site.tenant.slug, "tenant"):
            assert secret not in text.replace(body["challenge"], "")
        assert response["Cache-Control"] == "no-store"

    def test_pow_is_announced(self, client, tenant):
        site = WebChatSiteFactory(tenant=tenant, pow_difficulty=8)
        body = WidgetClient(client, site.site_key).config().json()
        assert body["pow"]["algorithm"] == "SHA-256"
        assert body["pow"]["difficulty"] == 8
        assert len(body["pow"]["salt"]) >= 16

    def test_unknown_and_missing_site_key(self, widget_client):
        assert error_of(widget_client.config(site_key="wk_nope")) == (404, "unknown_site")
        response = widget_client.client.get(API + "config", HTTP_ORIGIN=ORIGIN)
        assert error_of(response) == (400, "invalid_request")
        assert "site_key" in response.json()["error"]["message"]

    def test_inactive_site_is_unknown(self, widget_client, site):
        site.active = False
        site.save()
        assert error_of(widget_client.config()) == (404, "unknown_site")

    def test_disallowed_origin_is_refused_and_recorded(self, widget_client, site):
        response = widget_client.config(origin="https://evil.test")
        assert error_of(response) == (403, "origin_not_allowed")
        event = WebChatEvent.objects.get(site=site, type=EventType.ORIGIN_DENIED)
        assert event.payload == {"origin": "https://evil.test", "route": "config"}
        assert event.tenant_id == site.tenant_id

    def test_missing_origin_is_refused(self, widget_client):
        assert error_of(widget_client.config(origin="")) == (403, "origin_not_allowed")

    def test_referer_fallback(self, widget_client):
        response = widget_client.client.get(
            API + "config",
            {"site_key": widget_client.site_key},
            HTTP_REFERER="https://a.example.org/page?x=1",
        )
        assert response.status_code == 200
        bad = widget_client.client.get(
            API + "config", {"site_key": widget_client.site_key}, HTTP_REFERER="https://evil.test/"
        )
        assert error_of(bad) == (403, "origin_not_allowed")

    def test_tenant_disabled(self, widget_client, tenant):
        TenantRollout.objects.create(tenant=tenant, override=Override.FORCE_OFF)
        assert error_of(widget_client.config()) == (403, "webchat_disabled")

    def test_cors_headers_only_for_allowed_origins(self, widget_client):
        allowed = widget_client.config()
        assert allowed["Access-Control-Allow-Origin"] == ORIGIN
        denied = widget_client.config(origin="https://evil.test")
        # the refusal itself is readable (so the widget stops), nothing else is
        assert error_of(denied) == (403, "origin_not_allowed")
        assert denied["Access-Control-Allow-Origin"] == "https://evil.test"
        assert "Access-Control-Allow-Credentials" not in denied

    @pytest.mark.parametrize("route", ["config", "init", "messages", "events"])
    def test_preflight(self, client, site, route):
        response = client.options(
            API + route,
            HTTP_ORIGIN=ORIGIN,
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
        )
        assert response.status_code == 200
        assert response["Access-Control-Allow-Origin"] == ORIGIN
        assert "authorization" in response["Access-Control-Allow-Headers"]
        evil = client.options(
            API + route, HTTP_ORIGIN="https://evil.test", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
        )
        assert "Access-Control-Allow-Origin" not in evil

    def test_config_is_served_from_cache(self, widget_client, django_assert_max_num_queries):
        widget_client.config()
        with django_assert_max_num_queries(0):
            assert widget_client.config().status_code == 200

    def test_site_change_is_seen_at_once(self, widget_client, site):
        widget_client.config()
        site.title = "New title"
        site.save()
        assert widget_client.config().json()["site"]["title"] == "New title"


# --- init -------------------------------------------------------------------------------


class TestInit:
    def test_creates_visitor_session_and_conversation(self, widget_client, site):
        response = widget_client.init(
            page={
                "url": "https://shop.example.com/boots",
                "referrer": "https://google.com/",
                "locale": "de-DE",
                "utm": {"source": "newsletter", "campaign": "autumn"},
            }
        )
        assert response.status_code == 200
        body = response.json()
        assert set(body) >= {
            "session_token",
            "expires_at",
            "visitor_id",
            "conversation_id",
            "messages",
            "resumed",
        }
        assert body["resumed"] is False
        assert body["messages"] == []
        conversation = Conversation.objects.get(pk=body["conversation_id"])
        assert conversation.tenant_id == site.tenant_id
        assert conversation.channel == "web"
        assert conversation.channel_id is None
        assert conversation.bot_id == site.bot_id
        session = WebChatSession.objects.get(conversation=conversation)
        assert session.visitor_id == body["visitor_id"]
        assert session.origin == ORIGIN
        assert session.page_url == "https://shop.example.com/boots"
        assert session.referrer == "https://google.com/"
        assert session.locale == "de-DE"
        assert session.utm == {"source": "newsletter", "campaign": "autumn"}
        assert len(session.ip_hash) == 16
        assert "127.0.0.1" not in session.ip_hash

    def test_resume_with_session_token_keeps_the_conversation(self, widget_client):
        first = widget_client.init().json()
        widget_client.send("hello there")
        again = widget_client.init(
            session_token=first["session_token"], visitor_id=first["visitor_id"]
        ).json()
        assert again["resumed"] is True
        assert again["conversation_id"] == first["conversation_id"]
        assert again["visitor_id"] == first["visitor_id"]
        assert again["messages"][0]["text"] == "hello there"
        assert Conversation.objects.count() == 1
        assert WebChatSession.objects.count() == 1

    def test_resume_with_visitor_id(self, client, site):
        first = WidgetClient(client, site.site_key)
        first_body = first.init().json()
        second = WidgetClient(client, site.site_key)
        body = second.init(
            visitor_id=first_body["visitor_id"], conversation_id=first_body["conversation_id"]
        ).json()
        assert body["resumed"] is True
        assert body["conversation_id"] == first_body["conversation_id"]

    def test_a_token_issued_to_another_website_of_the_site_does_not_resume(self, widget_client):
        first = widget_client.init(origin="https://a.example.org").json()
        response = widget_client.init(
            origin="https://b.example.org", session_token=first["session_token"]
        )
        assert error_of(response) == (401, "token_invalid")
        assert Conversation.objects.count() == 1

    def test_a_session_retention_anonymized_does_not_resume(self, widget_client, site):
        from webchat.rollups import visitor_data_purge

        first = widget_client.init().json()
        site.tenant.pii_retention_days = 7
        site.tenant.save(update_fields=["pii_retention_days"])
        visitor_data_purge(tenant=site.tenant, now=timezone.now() + timedelta(days=8))
        again = widget_client.init(session_token=first["session_token"]).json()
        assert again["resumed"] is False
        assert again["conversation_id"] != first["conversation_id"]
        assert again["visitor_id"] not in ("", first["visitor_id"])  # forgotten
        old = WebChatSession.objects.get(conversation_id=first["conversation_id"])
        assert old.visitor_id == "" and old.anonymized_at is not None

    def test_resolved_conversation_starts_a_new_one(self, widget_client):
        first = widget_client.init().json()
        Conversation.objects.filter(pk=first["conversation_id"]).update(
            status=ConversationStatus.RESOLVED
        )
        again = widget_client.init(session_token=first["session_token"]).json()
        assert again["resumed"] is False
        assert again["conversation_id"] != first["conversation_id"]
        assert again["visitor_id"] == first["visitor_id"]

    def test_a_returning_visitors_new_conversation_keeps_the_email_they_gave(
        self, widget_client, site
    ):
        first = widget_client.init().json()
        contact = Contact.objects.create(tenant=site.tenant, email="jane@example.com")
        Contact.objects.filter(pk=contact.pk).update(updated_at="2020-01-01T00:00Z")
        Conversation.objects.filter(pk=first["conversation_id"]).update(
            contact=contact, status=ConversationStatus.RESOLVED
        )
        again = widget_client.init(session_token=first["session_token"]).json()
        assert again["conversation_id"] != first["conversation_id"]
        assert Conversation.objects.get(pk=again["conversation_id"]).contact_id == contact.pk
        contact.refresh_from_db()
        assert contact.updated_at.year > 2020  # active again, for data retention
        other = WidgetClient(widget_client.client, site.site_key).init().json()
        assert Conversation.objects.get(pk=other["conversation_id"]).contact_id is None

    @pytest.mark.parametrize("kind", ["verified", "anonymized", "another_tenants"])
    def test_a_verified_anonymized_or_foreign_contact_is_not_handed_on(
        self, widget_client, site, other_tenant, kind
    ):
        contact = {
            "verified": lambda: Contact.objects.create(
                tenant=site.tenant, external_id="user-42", email="jane@example.com"
            ),
            "anonymized": lambda: Contact.objects.create(
                tenant=site.tenant, anonymized_at="2026-01-01T00:00Z"
            ),
            "another_tenants": lambda: Contact.objects.create(
                tenant=other_tenant, email="jane@example.com"
            ),
        }[kind]()
        first = widget_client.init().json()
        Conversation.objects.filter(pk=first["conversation_id"]).update(
            contact=contact, status=ConversationStatus.RESOLVED
        )
        again = widget_client.init(session_token=first["session_token"]).json()
        assert Conversation.objects.get(pk=again["conversation_id"]).contact_id is None

    def test_only_the_latest_conversations_contact_is_handed_on(self, widget_client, site):
        first = widget_client.init().json()
        contact = Contact.objects.create(tenant=site.tenant, email="jane@example.com")
        Conversation.objects.filter(pk=first["conversation_id"]).update(
            contact=contact, status=ConversationStatus.RESOLVED
        )
        second = widget_client.init(session_token=first["session_token"]).json()
        assert Conversation.objects.get(pk=second["conversation_id"]).contact_id == contact.pk
        # someone else on that browser, who gave no email
        Conversation.objects.filter(pk=second["conversation_id"]).update(
            contact=None, status=ConversationStatus.RESOLVED
        )
        third = widget_client.init(session_token=second["session_token"]).json()
        assert Conversation.objects.get(pk=third["conversation_id"]).contact_id is None

    def test_replayed_challenge_is_refused(self, widget_client):
        challenge = widget_client.config().json()["challenge"]
        assert widget_client.init(challenge=challenge).status_code == 200
        assert error_of(widget_client.init(challenge=challenge)) == (403, "challenge_invalid")
        assert Conversation.objects.count() == 1

    def test_forged_challenge_is_refused(self, widget_client, site):
        assert error_of(widget_client.init(challenge="abc:def")) == (403, "challenge_invalid")
        assert WebChatEvent.objects.filter(site=site, type=EventType.CHALLENGE_INVALID).count() == 1

    def test_challenge_from_another_origin_is_refused(self, widget_client):
        challenge = widget_client.config(origin="https://a.example.org").json()["challenge"]
        assert error_of(widget_client.init(challenge=challenge)) == (403, "challenge_invalid")

    def test_pow_required_when_set(self, client, tenant):
        from webchat.tokens import pow_solve

        site = WebChatSiteFactory(tenant=tenant, pow_difficulty=8)
        widget = WidgetClient(client, site.site_key)
        config = widget.config().json()
        assert error_of(widget.init(challenge=config["challenge"])) == (403, "challenge_invalid")
        config = widget.config().json()
        solution = pow_solve(config["pow"]["salt"], 8)
        assert widget.init(challenge=config["challenge"], pow_solution=solution).status_code == 200

    def test_someone_elses_conversation_is_not_found(self, client, site, tenant, other_tenant):
        mine = WidgetClient(client, site.site_key)
        mine_body = mine.init().json()
        stranger = WidgetClient(client, site.site_key)
        response = stranger.init(visitor_id="x" * 32, conversation_id=mine_body["conversation_id"])
        assert error_of(response) == (404, "conversation_not_found")
        # another tenant's site cannot resume it either, even with the real visitor id
        foreign_site = WebChatSiteFactory(tenant=other_tenant)
        foreign = WidgetClient(client, foreign_site.site_key)
        response = foreign.init(
            visitor_id=mine_body["visitor_id"], conversation_id=mine_body["conversation_id"]
        )
        assert error_of(response) == (404, "conversation_not_found")
        response = foreign.init(session_token=mine_body["session_token"])
        assert error_of(response) == (401, "token_invalid")

    def test_identity_verification_links_a_contact(self, widget_client, site):
        user_hash = identity_hash(IDENTITY_SECRET, "user-42")
        body = widget_client.init(user_id="user-42", user_hash=user_hash).json()
        conversation = Conversation.objects.get(pk=body["conversation_id"])
        assert conversation.contact.external_id == "user-42"
        assert conversation.contact.tenant_id == site.tenant_id

    @pytest.mark.parametrize("next_user", ["user-7", None], ids=["another user", "signed out"])
    def test_a_verified_users_conversation_does_not_resume_for_the_next_person(
        self, widget_client, site, next_user
    ):
        first = widget_client.init(**_verified("user-42")).json()
        widget_client.send("my order 1234 never came")
        identity = _verified(next_user) if next_user else {}
        again = widget_client.init(session_token=first["session_token"], **identity).json()
        assert again["resumed"] is False
        assert again["conversation_id"] != first["conversation_id"]
        assert again["messages"] == []
        mine = Conversation.objects.select_related("contact").get(pk=first["conversation_id"])
        assert mine.contact.external_id == "user-42"  # still theirs
        theirs = Conversation.objects.select_related("contact").get(pk=again["conversation_id"])
        assert (theirs.contact.external_id if theirs.contact else None) == next_user
        # the same user, verified again, resumes theirs
        back = widget_client.init(
            visitor_id=first["visitor_id"],
            conversation_id=first["conversation_id"],
            **_verified("user-42"),
        ).json()
        assert back["resumed"] is True
        assert back["conversation_id"] == first["conversation_id"]

    def test_a_leads_conversation_goes_to_the_user_who_signs_in(self, widget_client, site):
        first = widget_client.init().json()
        lead = Contact.objects.create(tenant=site.tenant, email="jane@example.com")
        Conversation.objects.filter(pk=first["conversation_id"]).update(contact=lead)
        again = widget_client.init(
            session_token=first["session_token"], **_verified("user-42")
        ).json()
        assert again["resumed"] is True
        assert again["conversation_id"] == first["conversation_id"]
        conversation = Conversation.objects.select_related("contact").get(
            pk=first["conversation_id"]
        )
        assert conversation.contact.external_id == "user-42"

    def test_identity_with_wrong_hash_is_refused(self, widget_client):
        response = widget_client.init(
            user_id="user-42", user_hash=identity_hash("guess", "user-42")
        )
        assert error_of(response) == (403, "identity_invalid")
        assert not Contact.objects.exists()
        assert error_of(widget_client.init(user_id="user-42")) == (400, "invalid_request")

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"site_key": 5, "challenge": []},
            {"site_key": "x", "challenge": "y", "conversation_id": "abc"},
            {"site_key": "x", "challenge": "y", "page": "nope"},
            {"site_key": "x", "challenge": "y", "pow_solution": -1},
            None,
            [],
            "x",
        ],
    )
    def test_validation(self, widget_client, body):
        response = widget_client.post("init", body, auth=False)
        assert error_of(response) == (400, "invalid_request")
        assert response.json()["error"]["message"]

    def test_bad_visitor_id_is_refused(self, widget_client):
        response = widget_client.init(visitor_id="<script>")
        assert error_of(response) == (400, "invalid_request")

    def test_not_json_and_too_large(self, widget_client):
        client = widget_client.client
        not_json = client.post(
            API + "init", data="{nope", content_type="application/json", HTTP_ORIGIN=ORIGIN
        )
        assert error_of(not_json) == (400, "invalid_request")
        big = {"site_key": "x", "challenge": "y", "page": {"url": "a" * 40_000}}
        response = client.post(
            API + "init", data=json.dumps(big), content_type="application/json", HTTP_ORIGIN=ORIGIN
        )
        assert error_of(response) == (413, "payload_too_large")
        form = client.post(API + "init", data={"a": "b"}, HTTP_ORIGIN=ORIGIN)
        assert error_of(form) == (415, "invalid_request")

    @pytest.mark.parametrize("route", ["init", "messages", "events"])
    def test_a_body_nested_too_deeply_is_a_400(self, widget_client, route):
        widget_client.init()
        deep = "[" * 5000 + "]" * 5000  # 10 KB: under the size limit
        response = widget_client.client.post(
            API + route,
            data=f'{{"site_key": "x", "page": {deep}, "events": {deep}}}',
            content_type="application/json",
            HTTP_ORIGIN=ORIGIN,
            HTTP_AUTHORIZATION=f"Bearer {widget_client.token}",
        )
        assert error_of(response) == (400, "invalid_request")

    def test_init_query_count(self, widget_client, django_assert_max_num_queries):
        widget_client.config()
        with django_assert_max_num_queries(8):
            assert widget_client.init().status_code == 200

    def test_init_query_count_for_a_returning_visitor_with_a_contact(
        self, widget_client, site, django_assert_max_num_queries
    ):
        first = widget_client.init().json()
        contact = Contact.objects.create(tenant=site.tenant, email="jane@example.com")
        Conversation.objects.filter(pk=first["conversation_id"]).update(
            contact=contact, status=ConversationStatus.RESOLVED
        )
        widget_client.config()
        with django_assert_max_num_queries(10):
            again = widget_client.init(session_token=first["session_token"])
        assert Conversation.objects.get(pk=again.json()["conversation_id"]).contact_id == contact.pk


# --- messages ---------------------------------------------------------------------------


class TestMessages:
    def test_message_is_stored_with_transcript(self, widget_client, site):
        widget_client.init()
        response = widget_client.send("  Hello\x00 there\x07  ", client_message_id="cm-1")
        assert response.status_code == 201
        body = response.json()
        message = body["message"]
        assert message["text"] == "Hello there"
        assert message["direction"] == "inbound"
        assert message["sender"] == "visitor"
        assert message["conversation_id"] == widget_client.conversation_id
        assert message["client_message_id"] == "cm-1"  # the widget matches its bubble on it
        stored = Message.objects.get(pk=message["id"])
        assert stored.client_message_id == "cm-1"
        assert stored.tenant_id == site.tenant_id
        # the bot answered (the AI task runs after commit, eagerly in tests)
        outbound = Message.objects.filter(
            conversation_id=widget_client.conversation_id, direction="outbound"
        )
        assert outbound.count() >= 1
        polled = widget_client.poll(message["id"]).json()
        assert polled["pending_reply"] is False
        assert [m["id"] for m in polled["messages"]] == list(outbound.values_list("id", flat=True))
        assert all(
            m["sender"] == "bot" and m["direction"] == "outbound" for m in polled["messages"]
        )
        assert all(m["client_message_id"] is None for m in polled["messages"])
        assert all(r["sender"] == "bot" for r in body["replies"])
        everything = widget_client.poll(0).json()["messages"]
        assert [m["client_message_id"] for m in everything if m["direction"] == "inbound"] == [
            "cm-1"
        ]

    def test_retry_is_idempotent(self, widget_client):
        widget_client.init()
        first = widget_client.send("once only", client_message_id="same-id")
        second = widget_client.send("once only", client_message_id="same-id")
        assert first.status_code == 201
        assert second.status_code == 200
        assert second.json()["message"] == first.json()["message"]
        assert Message.objects.filter(client_message_id="same-id").count() == 1
        # the retry did not make the bot answer twice
        assert [m["id"] for m in second.json()["replies"]] == list(
            Message.objects.filter(direction="outbound").values_list("id", flat=True)
        )

    def test_client_ids_of_mirrored_agent_replies_are_refused(self, widget_client):
        """Agent replies from Chatwoot are stored as "chatwoot:<id>": a visitor sending that
        id first would make the agent's reply look like a redelivery and drop it."""
        widget_client.init()
        for taken in ("chatwoot:41", "Chatwoot:41"):
            response = widget_client.send("hi", client_message_id=taken)
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "invalid_request"
            assert "client_message_id" in response.json()["error"]["message"]
        assert not Message.objects.filter(text="hi").exists()
        assert widget_client.send("hi", client_message_id="mine:41").status_code == 201

    def test_poll_after_cursor(self, widget_client):
        widget_client.init()
        sent = widget_client.send("first").json()
        everything = widget_client.poll(0).json()
        ids = [m["id"] for m in everything["messages"]]
        assert ids[0] == sent["message"]["id"]
        assert ids == sorted(ids)
        newer = widget_client.poll(ids[-1]).json()
        assert newer == {"messages": [], "pending_reply": False}
        response = widget_client.client.get(
            API + "messages", {"after": "abc"}, **widget_client._headers()
        )
        assert error_of(response) == (400, "invalid_request")

    @pytest.mark.parametrize(
        ("body", "fragment"),
        [
            ({"text": "", "client_message_id": "a"}, "text"),
            ({"text": "   \x00 ", "client_message_id": "a"}, "Write a message"),
            ({"text": "x" * 4001, "client_message_id": "a"}, "4000"),
            ({"text": "hi"}, "client_message_id"),
            ({"text": "hi", "client_message_id": "bad id!"}, "client_message_id"),
            ({"text": ["hi"], "client_message_id": "a"}, "text"),
            # bodies that are JSON but not an object
            (None, "No data provided"),
            (["hi"], "Expected a dictionary"),
            ("hi", "Expected a dictionary"),
        ],
    )
    def test_validation(self, widget_client, body, fragment):
        widget_client.init()
        response = widget_client.post("messages", body)
        assert error_of(response) == (400, "invalid_request")
        assert fragment in response.json()["error"]["message"]
        assert not Message.objects.exists()

    def test_text_of_exactly_4000_chars_is_accepted(self, widget_client):
        widget_client.init()
        assert widget_client.send("y" * 4000).status_code == 201

    def test_token_guards(self, widget_client, site):
        widget_client.init()
        assert error_of(widget_client.send("x", token="")) == (401, "token_invalid")
        assert error_of(widget_client.send("x", token="garbage")) == (401, "token_invalid")
        tampered = (
            widget_client.token[:-2]
            + ("A" if widget_client.token[-2] != "A" else "B")
            + widget_client.token[-1]
        )
        assert error_of(widget_client.send("x", token=tampered)) == (401, "token_invalid")
        assert not Message.objects.exists()

    def test_expired_token(self, widget_client, site):
        widget_client.init()
        time.sleep(1.2)
        with override_settings(WEBCHAT_SESSION_TTL=1):
            assert error_of(widget_client.send("late")) == (401, "token_expired")
            assert error_of(widget_client.poll()) == (401, "token_expired")
        assert not Message.objects.exists()
        assert WebChatEvent.objects.filter(site=site, type=EventType.TOKEN_INVALID).exists()

    def test_token_bound_to_origin(self, widget_client, site):
        widget_client.init()
        # another origin the site allows is still not the origin the token was issued to
        response = widget_client.send("x", origin="https://a.example.org")
        assert error_of(response) == (401, "token_invalid")
        # an origin the site does not allow at all
        assert error_of(widget_client.send("x", origin="https://evil.test")) == (
            403,
            "origin_not_allowed",
        )
        assert not Message.objects.exists()

    def test_token_of_a_deactivated_site(self, widget_client, site):
        widget_client.init()
        site.active = False
        site.save()
        assert error_of(widget_client.send("x")) == (401, "token_invalid")

    def test_disabled_tenant_stops_existing_sessions(self, widget_client, tenant):
        widget_client.init()
        TenantRollout.objects.create(tenant=tenant, override=Override.FORCE_OFF)
        clear_own_cache_keys()  # the cached decision would otherwise hold for its TTL
        assert error_of(widget_client.send("x")) == (403, "webchat_disabled")
        assert error_of(widget_client.poll()) == (403, "webchat_disabled")
        assert error_of(widget_client.events([{"type": "widget_loaded"}])) == (
            403,
            "webchat_disabled",
        )

    def test_message_query_count(self, widget_client, django_assert_max_num_queries):
        widget_client.init()
        widget_client.send("warm up")
        with django_assert_max_num_queries(25):
            assert widget_client.send("what are your opening hours").status_code == 201
        with django_assert_max_num_queries(4):
            assert widget_client.poll().status_code == 200


# --- events -----------------------------------------------------------------------------


class TestEvents:
    def test_batch_with_rejects(self, widget_client, site):
        widget_client.init()
        response = widget_client.events(
            [
                {"type": "widget_loaded", "at": "2026-11-23T10:00:00Z"},
                {"type": "launcher_opened", "data": {"width": 390}},
                {"type": "not_a_type"},
                "garbage",
                {"type": "error", "data": {"blob": "x" * 5000}},
            ]
        )
        assert response.status_code == 202
        assert response.json() == {"accepted": 2, "rejected": 3}
        events = WebChatEvent.objects.filter(site=site).order_by("id")
        assert [e.type for e in events] == ["widget_loaded", "launcher_opened"]
        assert events[1].payload["data"] == {"width": 390}
        assert all(e.session_id is not None for e in events)

    def test_text_postgresql_cannot_store_rejects_that_event_only(self, widget_client, site):
        widget_client.init()
        response = widget_client.events(
            [
                {"type": "widget_loaded"},
                {"type": "error", "data": {"message": "bad\u0000byte"}},
                {"type": "error", "data": {"half\ud800pair": 1}},
                {"type": "error", "data": {"nested": [{"deep": "\udfff"}]}},
                # nested 600 deep: refused, not walked into (no RecursionError)
                {"type": "error", "data": json.loads('{"d": ' + "[" * 600 + "]" * 600 + "}")},
                {"type": "launcher_opened", "data": {"title": "Caf\u00e9 \U0001f600"}},
            ]
        )
        assert response.status_code == 202, response.content
        assert response.json() == {"accepted": 2, "rejected": 4}
        stored = WebChatEvent.objects.filter(site=site).order_by("id")
        assert [e.type for e in stored] == ["widget_loaded", "launcher_opened"]
        assert stored[1].payload["data"] == {"title": "Caf\u00e9 \U0001f600"}

    def test_before_init_with_site_key(self, widget_client, site):
        response = widget_client.events([{"type": "widget_loaded"}], with_site_key=True)
        assert response.status_code == 202
        assert WebChatEvent.objects.get(site=site).session_id is None

    def test_needs_token_or_site_key(self, widget_client):
        assert error_of(widget_client.events([{"type": "widget_loaded"}])) == (401, "token_invalid")
        assert error_of(widget_client.post("events", {"events": []}, auth=False)) == (
            400,
            "invalid_request",
        )
        too_many = [{"type": "widget_loaded"}] * 51
        assert error_of(widget_client.events(too_many, with_site_key=True)) == (
            400,
            "invalid_request",
        )

    def test_telemetry_off_stores_nothing(self, widget_client, site):
        site.telemetry_enabled = False
        site.save()
        response = widget_client.events([{"type": "widget_loaded"}], with_site_key=True)
        assert response.json() == {"accepted": 0, "rejected": 1}
        assert not WebChatEvent.objects.exists()


# --- rate limits and schema --------------------------------------------------------------


class TestRateLimits:
    @pytest.fixture(autouse=True)
    def _low_limits(self, settings):
        # hour-long windows: a minute's window could roll over mid-test and reset a count
        settings.WEBCHAT_RATE_LIMITS = {
            "config": {"ip": "3/h", "site": "1000/h"},
            "init": {"ip": "100/h", "site": "1000/h"},
            "messages_post": {"ip": "100/h", "site": "1000/h", "session": "2/h"},
            "messages_get": {"ip": "100/h", "site": "1000/h", "session": "100/h"},
            "events": {"ip": "100/h", "site": "1000/h", "session": "100/h"},
            "site_lookup": {"ip": "3/h"},
        }

    def test_made_up_site_keys_cost_no_query_past_the_lookup_limit(
        self, client, site, django_assert_num_queries
    ):
        widget_client = WidgetClient(client, site.site_key)
        widget_client.config()  # a real site, cached from now on
        made_up = [WidgetClient(client, f"wk_madeup{n:04d}x") for n in range(4)]
        assert [error_of(c.config()) for c in made_up[:2]] == [(404, "unknown_site")] * 2
        with django_assert_num_queries(0):
            refused = made_up[2].config()
            init = made_up[3].post(
                "init", {"site_key": "wk_madeup9999x", "challenge": "c"}, auth=False
            )
        # the real site's first lookup and two made-up keys used the 3 lookups
        assert error_of(refused) == error_of(init) == (429, "rate_limited")
        assert 1 <= int(refused["Retry-After"]) <= 3600
        # a key already known costs no lookup: the cached site and its cached absence
        assert widget_client.config().status_code == 200
        assert error_of(made_up[0].config()) == (404, "unknown_site")

    def test_config_per_ip(self, widget_client, site):
        codes = [widget_client.config().status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        response = widget_client.config()
        assert error_of(response) == (429, "rate_limited")
        # the seconds left in the window of the limit that was hit (at most its period)
        assert 1 <= int(response["Retry-After"]) <= 3600
        assert WebChatEvent.objects.filter(site=site, type=EventType.RATE_LIMITED).exists()

    def test_messages_per_session(self, client, site):
        first = WidgetClient(client, site.site_key)
        first.init()
        assert [first.send(f"m{i}").status_code for i in range(3)] == [201, 201, 429]
        assert Message.objects.filter(direction="inbound").count() == 2
        # another session of the same site is not affected
        second = WidgetClient(client, site.site_key)
        second.init()
        assert second.send("hi").status_code == 201


def test_openapi_schema_lists_the_routes(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode()
    for route in (
        "/api/webchat/v1/config",
        "/api/webchat/v1/init",
        "/api/webchat/v1/messages",
        "/api/webchat/v1/events",
    ):
        assert route in text


def test_openapi_schema_documents_errors_tokens_and_limits(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    paths = schema["paths"]
    error = {"$ref": "#/components/schemas/Error"}
    for path, operations in paths.items():
        if not path.startswith("/api/webchat/"):
            continue
        for method, operation in operations.items():
            for status in ("400", "403", "429"):
                body = operation["responses"][status]["content"]["application/json"]["schema"]
                assert body == error, (path, method, status)
            retry_after = operation["responses"]["429"]["headers"]["Retry-After"]
            assert retry_after["schema"] == {"type": "integer", "minimum": 1}, (path, method)
            # OpenAPI ignores header parameters named Authorization: a security scheme says it
            names = [p["name"].lower() for p in operation.get("parameters", [])]
            assert "authorization" not in names, (path, method)
    assert set(schema["components"]["schemas"]["ErrorDetail"]["properties"]) == {
        "code",
        "message",
    }
    assert schema["components"]["securitySchemes"]["sessionToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The session_token from init, as 'Authorization: Bearer <token>'.",
    }
    token = [{"sessionToken": []}]
    messages = paths["/api/webchat/v1/messages"]
    assert messages["get"]["security"] == messages["post"]["security"] == token
    # events take a token, or (before init) the site key in the body
    assert paths["/api/webchat/v1/events"]["post"]["security"] == [*token, {}]
    for path in ("/api/webchat/v1/config", "/api/webchat/v1/init"):
        assert paths[path][next(iter(paths[path]))].get("security", [{}]) == [{}], path
    text = schema["components"]["schemas"]["MessageInputRequest"]["properties"]["text"]
    assert (text["minLength"], text["maxLength"]) == (1, 4000)


def test_openapi_schema_lists_each_error_code_under_the_status_it_is_answered_with(client):
    """A client reading the schema branches on the status: every error code the public
    API answers with is documented, and under the status it really comes with."""
    import re

    import yaml

    from core.exceptions import InvalidRequest, PayloadTooLarge, RateLimited
    from webchat import exceptions

    answered = {
        error.code: error.status
        for error in (
            InvalidRequest,
            PayloadTooLarge,
            RateLimited,
            exceptions.UnknownSite,
            exceptions.OriginNotAllowed,
            exceptions.ChallengeInvalid,
            exceptions.TokenInvalid,
            exceptions.TokenExpired,
            exceptions.ConversationNotFound,
            exceptions.WebchatDisabled,
            exceptions.IdentityInvalid,
        )
    }
    schema = yaml.safe_load(client.get("/api/schema/").content)
    documented = {}
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/webchat/"):
            continue
        for operation in operations.values():
            for status, response in operation["responses"].items():
                for code in re.findall(r"[a-z]+(?:_[a-z]+)+", response.get("description", "")):
                    documented.setdefault(code, set()).add(int(status))
    assert {code: {status} for code, status in answered.items()} == {
        code: statuses for code, statuses in documented.items() if code in answered
    }


def test_openapi_schema_gives_the_closed_sets_as_enums(client):
    """A client generated from the schema gets enums, not free strings, for what can only
    be one of a few values: error codes, message direction and sender, widget position,
    the proof-of-work algorithm and each event's type."""
    import yaml

    from crm.models import Direction, SenderType
    from webchat.models import WIDGET_EVENT_TYPES, Position
    from webchat.tokens import POW_ALGORITHM

    schema = yaml.safe_load(client.get("/api/schema/").content)
    components = schema["components"]["schemas"]

    def enum_of(component: str, field: str) -> list:
        prop = components[component]["properties"][field]
        ref = prop.get("$ref") or next(p["$ref"] for p in prop.get("allOf", []))
        return components[ref.rsplit("/", 1)[1]]["enum"]

    codes = enum_of("ErrorDetail", "code")
    for code in ("invalid_request", "unknown_site", "token_expired", "rate_limited"):
        assert code in codes
    documented = " ".join(
        response.get("description", "")
        for operations in schema["paths"].values()
        for operation in operations.values()
        for response in operation["responses"].values()
    )
    assert all(
        code in documented or code in {"not_found", "method_not_allowed", "not_acceptable"}
        for code in codes
    )
    assert enum_of("Message", "direction") == list(Direction.values)
    assert enum_of("Message", "sender") == list(SenderType.values)
    assert enum_of("SiteConfig", "position") == list(Position.values)
    assert enum_of("Pow", "algorithm") == [POW_ALGORITHM]
    events = components["EventsInputRequest"]["properties"]["events"]["items"]
    event = components[events["$ref"].rsplit("/", 1)[1]]
    assert enum_of(events["$ref"].rsplit("/", 1)[1], "type") == sorted(WIDGET_EVENT_TYPES)
    assert event["required"] == ["type"]


def test_another_tenants_bot_never_answers(client, other_tenant, tenant):
    """A site is served by its own tenant's bot and data only."""
    foreign_bot = BotFactory(tenant=other_tenant)
    site = WebChatSiteFactory(tenant=tenant, bot=BotFactory(tenant=tenant))
    widget = WidgetClient(client, site.site_key)
    widget.init()
    widget.send("hello")
    conversation = Conversation.objects.get(pk=widget.conversation_id)
    assert conversation.bot_id != foreign_bot.pk
    assert set(Message.objects.values_list("tenant_id", flat=True)) == {tenant.pk}


def test_log_lines_of_a_public_request_carry_its_tenant(widget_client, site):
    import structlog

    structlog.contextvars.clear_contextvars()
    assert widget_client.config().status_code == 200
    bound = structlog.contextvars.get_contextvars()
    assert bound["tenant_id"] == site.tenant_id and bound["request_id"]
