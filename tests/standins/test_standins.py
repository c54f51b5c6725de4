"""The stand-ins themselves, over real HTTP. Needs no Django:
``pytest tests/standins -p no:django``.
"""

import hashlib
import hmac
import json
import threading
import time
import uuid

import httpx
import pytest

from tests.standins import (
    ChatwootStandin,
    LLMStandin,
    StandinServer,
    deliver_webhook,
    make_webhook,
)
from tests.standins.base import Response


def ask(llm: LLMStandin, messages=None, *, timeout: float = 5.0, **extra) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": messages or [{"role": "user", "content": "Hi"}]}
    return httpx.post(
        llm.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {llm.api_key}"},
        json={**body, **extra},
        timeout=timeout,
    )


class Receiver(StandinServer):
    """Our side of a webhook: records what arrives and answers 200."""

    def __init__(self) -> None:
        super().__init__()
        self.add_route("POST", "/hooks/chatwoot", lambda request: Response(200, {"ok": True}))


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def cw_headers(chatwoot_standin):
    return {"api_access_token": chatwoot_standin.api_token}


# -- LLM: OpenAI wire format -----------------------------------------------------------------


def test_chat_completion_has_openai_shape(llm_standin):
    response = ask(llm_standin, temperature=0.2, max_tokens=50)

    assert response.status_code == 200
    assert response.headers["x-request-id"].startswith("req_")
    completion = response.json()
    assert completion["id"].startswith("chatcmpl-")
    assert completion["object"] == "chat.completion"
    assert isinstance(completion["created"], int)
    assert completion["model"] == "gpt-4o-mini"
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": llm_standin.reply_text, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    usage = completion["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_completion_served_with_and_without_v1_prefix(llm_standin):
    headers = {"Authorization": f"Bearer {llm_standin.api_key}"}
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    for url in (llm_standin.base_url, llm_standin.url):
        assert httpx.post(url + "/chat/completions", headers=headers, json=body).status_code == 200
    models = httpx.get(llm_standin.base_url + "/models", headers=headers).json()
    assert models["object"] == "list"
    assert models["data"][0] == {
        "id": "gpt-4o-mini",
        "object": "model",
        "created": 1686935002,
        "owned_by": "system",
    }


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, None), ({"Authorization": "Bearer sk-wrong-key-123"}, "invalid_api_key")],
)
def test_llm_refuses_missing_or_wrong_bearer_key(llm_standin, headers, code):
    response = httpx.post(
        llm_standin.base_url + "/chat/completions",
        headers=headers,
        json={"model": "m", "messages": [{"role": "user", "content": "Hi"}]},
    )

    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code
    assert "sk-wrong-key-123" not in error["message"]  # the key is masked, as OpenAI does


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, None, None),
        ({"model": "m"}, "messages", "missing_required_parameter"),
        ({"model": "m", "messages": []}, "messages", "empty_array"),
        (
            {"model": "m", "messages": [{"content": "x"}]},
            "messages[0].role",
            "missing_required_parameter",
        ),
        ({"model": "m", "messages": [{"role": "x"}]}, "messages[0].role", "invalid_value"),
        (
            {"model": "m", "messages": [{"role": "user"}], "temperature": 3},
            "temperature",
            "decimal_above_max_value",
        ),
    ],
)
def test_llm_validates_the_body(llm_standin, body, param, code):
    response = httpx.post(
        llm_standin.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {llm_standin.api_key}"},
        json=body,
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)


def test_llm_answers_from_the_context_it_was_given(llm_standin):
    llm_standin.reply_text = None
    messages = [
        {"role": "system", "content": "You are Northwind's assistant. Be brief."},
        {
            "role": "system",
            "content": "Context:\n Refunds are issued within 14 days. Shipping is free.",
        },
        {"role": "user", "content": "How long do refunds take?"},
    ]

    assert ask(llm_standin, messages).json()["choices"][0]["message"]["content"] == (
        "Refunds are issued within 14 days."
    )
    no_context = ask(llm_standin, [{"role": "user", "content": "Hi"}]).json()
    assert no_context["choices"][0]["message"]["content"] == llm_standin.fallback_text


def test_llm_max_tokens_truncates_with_finish_reason_length(llm_standin):
    choice = ask(llm_standin, max_tokens=2).json()["choices"][0]

    assert choice["message"]["content"] == "Hello! This"
    assert choice["finish_reason"] == "length"


def test_request_log_records_method_path_headers_and_json(llm_standin):
    ask(llm_standin, [{"role": "user", "content": "Where is my parcel?"}])

    request = llm_standin.last_request
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {llm_standin.api_key}"
    assert request.json["messages"][0]["content"] == "Where is my parcel?"
    assert request.fault is None
    assert llm_standin.requests_to("POST /v1/chat/*") == [request]
    assert llm_standin.requests_to("GET /v1/chat/*") == []


# -- faults --------------------------------------------------------------------------------


def test_down_closes_the_connection_without_a_response(llm_standin):
    llm_standin.set_fault("down")

    with pytest.raises(httpx.RemoteProtocolError):
        ask(llm_standin)
    assert llm_standin.last_request.fault == "down"  # the attempt still reached the peer


def test_hang_times_out_the_client(llm_standin):
    llm_standin.set_fault("hang", seconds=5)

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        ask(llm_standin, timeout=0.3)
    assert time.monotonic() - started < 2


def test_stop_releases_a_hanging_request_promptly():
    llm = LLMStandin().start()
    llm.set_fault("hang")  # MAX_HANG_SECONDS
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            ask(llm, timeout=60)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    client = threading.Thread(target=call)
    client.start()
    llm.wait_for_requests("/v1/chat/completions")
    started = time.monotonic()
    llm.stop()
    assert time.monotonic() - started < 1.5
    client.join(timeout=2)
    assert not client.is_alive()
    assert isinstance(outcome[0], httpx.TransportError)


def test_slow_delays_then_answers_normally(llm_standin):
    llm_standin.set_fault("slow", seconds=0.3)

    started = time.monotonic()
    response = ask(llm_standin)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"


def test_status_answers_with_the_peers_error_shape_and_retry_after(llm_standin, chatwoot_standin):
    llm_standin.set_fault("status", status=429, retry_after=7)
    chatwoot_standin.set_fault("status", status=503, retry_after=2)

    limited = ask(llm_standin)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert set(limited.json()["error"]) == {"message", "type", "param", "code"}

    unavailable = httpx.get(chatwoot_standin.url + "/health")
    assert unavailable.status_code == 503
    assert unavailable.headers["retry-after"] == "2"
    assert unavailable.json() == {"error": "Service Unavailable"}


def test_malformed_answers_200_with_a_body_that_is_not_json(llm_standin):
    llm_standin.set_fault("malformed")

    response = ask(llm_standin)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_fault_for_the_next_n_requests_then_recovery(llm_standin):
    llm_standin.set_fault("status", status=500, times=2)

    statuses = [ask(llm_standin).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert [r.fault for r in llm_standin.requests] == ["status", "status", None]


def test_route_faults_and_ok_exemptions(chatwoot_standin, cw_headers):
    chatwoot_standin.set_fault("status", status=502, route="GET /api/v1/profile")
    assert httpx.get(chatwoot_standin.url + "/health").status_code == 200
    assert (
        httpx.get(chatwoot_standin.url + "/api/v1/profile", headers=cw_headers).status_code == 502
    )

    chatwoot_standin.clear_faults()
    chatwoot_standin.set_fault("down")
    chatwoot_standin.set_fault("ok", route="/health")
    assert httpx.get(chatwoot_standin.url + "/health").status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(chatwoot_standin.url + "/api")


def test_stop_then_start_is_an_outage_on_the_same_url(chatwoot_standin):
    url = chatwoot_standin.url
    chatwoot_standin.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health")

    chatwoot_standin.start()
    assert chatwoot_standin.url == url
    assert httpx.get(url + "/health").json() == {"status": "woot"}


def test_unknown_fault_is_refused(llm_standin):
    with pytest.raises(ValueError, match="unknown fault"):
        llm_standin.set_fault("explode")


# -- Chatwoot REST API -----------------------------------------------------------------------


def test_chatwoot_health_endpoints(chatwoot_standin):
    assert httpx.get(chatwoot_standin.url + "/health").json() == {"status": "woot"}
    api = httpx.get(chatwoot_standin.url + "/api").json()
    assert api["queue_services"] == api["data_services"] == "ok"
    # Chatwoot has no /rails/health route: Rails answers its HTML 404 page.
    missing = httpx.get(chatwoot_standin.url + "/rails/health")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")


def test_chatwoot_profile(chatwoot_standin, cw_headers):
    profile = httpx.get(chatwoot_standin.url + "/api/v1/profile", headers=cw_headers).json()

    assert profile["id"] == chatwoot_standin.user_id
    assert profile["email"] == chatwoot_standin.user_email
    assert profile["account_id"] == chatwoot_standin.account_id
    assert profile["accounts"][0]["id"] == chatwoot_standin.account_id
    assert profile["accounts"][0]["role"] == "administrator"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, {"errors": ["You need to sign in or sign up before continuing."]}),
        ({"api_access_token": "wrong"}, {"error": "Invalid Access Token"}),
    ],
)
def test_chatwoot_refuses_missing_or_wrong_token(chatwoot_standin, headers, body):
    response = httpx.get(chatwoot_standin.url + "/api/v1/profile", headers=headers)

    assert response.status_code == 401
    assert response.json() == body


def test_chatwoot_refuses_another_account(chatwoot_standin, cw_headers):
    response = httpx.post(
        chatwoot_standin.url + "/api/v1/accounts/999/contacts", headers=cw_headers, json={}
    )

    assert response.status_code == 401
    assert response.json() == {"error": "You are not authorized to access this account"}


def test_chatwoot_contact_conversation_message_flow(chatwoot_standin, cw_headers):
    api = chatwoot_standin.url + f"/api/v1/accounts/{chatwoot_standin.account_id}"

    contact = httpx.post(
        api + "/contacts",
        headers=cw_headers,
        json={"inbox_id": chatwoot_standin.inbox_id, "name": "Ann", "email": "Ann@Example.com"},
    ).json()["payload"]
    assert contact["contact"]["email"] == "ann@example.com"
    assert contact["contact_inbox"]["inbox"]["id"] == chatwoot_standin.inbox_id
    source_id = contact["contact_inbox"]["source_id"]
    assert contact["contact"]["contact_inboxes"][0]["source_id"] == source_id

    conversation = httpx.post(
        api + "/conversations",
        headers=cw_headers,
        json={"inbox_id": chatwoot_standin.inbox_id, "source_id": source_id},
    ).json()
    assert conversation["account_id"] == chatwoot_standin.account_id
    assert conversation["inbox_id"] == chatwoot_standin.inbox_id
    assert conversation["status"] == "open"
    assert conversation["meta"]["sender"]["id"] == contact["contact"]["id"]
    messages_url = api + f"/conversations/{conversation['id']}/messages"

    note = httpx.post(
        messages_url,
        headers=cw_headers,
        json={"content": "Draft: refund <approved>", "message_type": "outgoing", "private": True},
    )
    assert note.status_code == 200
    assert b"\\u003capproved\\u003e" in note.content  # Rails escapes HTML characters in JSON
    assert note.json()["message_type"] == 1  # REST: integers
    assert note.json()["private"] is True
    assert note.json()["sender"]["type"] == "user"
    assert isinstance(note.json()["created_at"], int)

    incoming = httpx.post(
        messages_url, headers=cw_headers, json={"content": "Thanks", "message_type": "incoming"}
    )
    assert incoming.json()["message_type"] == 0
    assert incoming.json()["sender"]["type"] == "contact"

    listed = httpx.get(messages_url, headers=cw_headers).json()
    assert [m["content"] for m in listed["payload"]] == ["Draft: refund <approved>", "Thanks"]
    assert listed["meta"]["contact"]["id"] == contact["contact"]["id"]


def test_chatwoot_lists_the_latest_20_messages_and_pages_back_with_before(
    chatwoot_standin, cw_headers
):
    """`MessageFinder`: no parameter is the latest 20; `before=<id>` the 20 before it."""
    conversation = chatwoot_standin.seed_conversation()
    api = chatwoot_standin.url + f"/api/v1/accounts/{chatwoot_standin.account_id}"
    messages_url = api + f"/conversations/{conversation['id']}/messages"
    for n in range(25):
        body = {"content": f"m{n}", "message_type": "incoming"}
        assert httpx.post(messages_url, headers=cw_headers, json=body).status_code == 200

    def contents(**params) -> list[str]:
        listed = httpx.get(messages_url, headers=cw_headers, params=params).json()
        return [m["content"] for m in listed["payload"]]

    latest = httpx.get(messages_url, headers=cw_headers).json()["payload"]
    assert [m["content"] for m in latest] == [f"m{n}" for n in range(5, 25)]
    assert contents(before=latest[0]["id"]) == [f"m{n}" for n in range(5)]
    assert contents(after=latest[0]["id"]) == [f"m{n}" for n in range(6, 25)]
    assert contents(after=latest[0]["id"], before=latest[2]["id"]) == ["m5", "m6"]


def test_chatwoot_validation_errors(chatwoot_standin, cw_headers):
    api = chatwoot_standin.url + "/api/v1/accounts/1"
    body = {"inbox_id": 1, "email": "a@example.com"}
    httpx.post(api + "/contacts", headers=cw_headers, json=body)

    duplicate = httpx.post(api + "/contacts", headers=cw_headers, json=body)
    assert duplicate.status_code == 422
    assert duplicate.json() == {"message": "Email has already been taken", "attributes": ["email"]}

    no_source = httpx.post(api + "/conversations", headers=cw_headers, json={"inbox_id": 1})
    assert no_source.status_code == 422
    unknown = httpx.post(
        api + "/conversations/999/messages", headers=cw_headers, json={"content": "x"}
    )
    assert (unknown.status_code, unknown.json()) == (404, {"error": "Resource could not be found"})


def _filter(api, headers, key, operator, values, **condition):
    body = {
        "payload": [
            {
                "attribute_key": key,
                "filter_operator": operator,
                "values": values,
                "query_operator": None,
                **condition,
            }
        ]
    }
    return httpx.post(api + "/contacts/filter", headers=headers, json=body)


def test_chatwoot_contact_identifier_is_unique_and_filtered_exactly(chatwoot_standin, cw_headers):
    api = chatwoot_standin.url + "/api/v1/accounts/1"
    for identifier in ("replybase:1:conversation:4", "replybase:1:conversation:40"):
        created = httpx.post(
            api + "/contacts",
            headers=cw_headers,
            json={"inbox_id": 1, "name": "Visitor", "identifier": identifier},
        )
        assert created.status_code == 200
        assert created.json()["payload"]["contact"]["identifier"] == identifier
    duplicate = httpx.post(
        api + "/contacts",
        headers=cw_headers,
        json={"inbox_id": 1, "identifier": "replybase:1:conversation:4"},
    )
    assert duplicate.status_code == 422
    assert duplicate.json() == {
        "message": "Identifier has already been taken",
        "attributes": ["identifier"],
    }

    found = _filter(api, cw_headers, "identifier", "equal_to", ["REPLYBASE:1:conversation:4"])
    assert found.status_code == 200
    body = found.json()
    assert body["meta"] == {"count": 1, "current_page": 1}
    [contact] = body["payload"]
    assert contact["identifier"] == "replybase:1:conversation:4"  # not ...:40
    assert contact["contact_inboxes"][0]["inbox"]["id"] == 1
    assert contact["contact_inboxes"][0]["source_id"]

    none = _filter(api, cw_headers, "identifier", "equal_to", ["replybase:1:conversation:5"])
    assert none.json() == {"meta": {"count": 0, "current_page": 1}, "payload": []}
    either = httpx.post(
        api + "/contacts/filter",
        headers=cw_headers,
        json={
            "payload": [
                {
                    "attribute_key": "identifier",
                    "filter_operator": "equal_to",
                    "values": ["replybase:1:conversation:4"],
                    "query_operator": "or",
                },
                {
                    "attribute_key": "identifier",
                    "filter_operator": "equal_to",
                    "values": ["replybase:1:conversation:40"],
                    "query_operator": None,
                },
            ]
        },
    )
    assert either.json()["meta"]["count"] == 2


@pytest.mark.parametrize(
    ("key", "operator", "error"),
    [
        ("favourite_colour", "equal_to", "Invalid attribute key - [favourite_colour]"),
        ("identifier", "contains", "Invalid filter operator - [contains]"),
    ],
)
def test_chatwoot_contact_filter_refuses_unknown_keys_and_operators(
    chatwoot_standin, cw_headers, key, operator, error
):
    api = chatwoot_standin.url + "/api/v1/accounts/1"
    refused = _filter(api, cw_headers, key, operator, ["x"])
    assert (refused.status_code, refused.json()) == (422, {"error": error})
    missing = httpx.post(api + "/contacts/filter", headers=cw_headers, json={})
    assert missing.status_code == 422


def test_chatwoot_lists_a_contacts_conversations(chatwoot_standin, cw_headers):
    api = chatwoot_standin.url + "/api/v1/accounts/1"
    contact = httpx.post(
        api + "/contacts", headers=cw_headers, json={"inbox_id": 1, "name": "Ann"}
    ).json()["payload"]
    contact_id = contact["contact"]["id"]
    ids = []
    for n in range(2):
        conversation = httpx.post(
            api + "/conversations",
            headers=cw_headers,
            json={
                "inbox_id": 1,
                "source_id": contact["contact_inbox"]["source_id"],
                "custom_attributes": {"replybase_id": f"ours:{n}"},
            },
        ).json()
        ids.append(conversation["id"])
    chatwoot_standin.seed_conversation(contact_name="Someone else")

    listed = httpx.get(api + f"/contacts/{contact_id}/conversations", headers=cw_headers)
    assert listed.status_code == 200
    payload = listed.json()["payload"]
    assert [c["id"] for c in payload] == ids[::-1]  # newest first
    assert [c["custom_attributes"]["replybase_id"] for c in payload] == ["ours:1", "ours:0"]
    assert all(c["inbox_id"] == 1 and c["meta"]["sender"]["id"] == contact_id for c in payload)

    unknown = httpx.get(api + "/contacts/999/conversations", headers=cw_headers)
    assert (unknown.status_code, unknown.json()) == (404, {"error": "Resource could not be found"})
    assert httpx.get(api + f"/contacts/{contact_id}/conversations").status_code == 401


def test_chatwoot_contact_inboxes_are_found_or_created(chatwoot_standin, cw_headers):
    """``ContactInboxBuilder``: one contact, a contact inbox (and so a conversation) per
    ``source_id``; the same ``source_id`` again finds the same one."""
    api = chatwoot_standin.url + "/api/v1/accounts/1"
    created = httpx.post(
        api + "/contacts",
        headers=cw_headers,
        json={"inbox_id": 1, "name": "Ann", "identifier": "replybase:1:contact:7"},
    ).json()["payload"]
    contact_id = created["contact"]["id"]
    url = api + f"/contacts/{contact_id}/contact_inboxes"

    made = httpx.post(url, headers=cw_headers, json={"inbox_id": 1, "source_id": "conv-2"})
    assert made.status_code == 200
    assert made.json()["source_id"] == "conv-2"
    inbox = made.json()["inbox"]
    assert inbox["id"] == 1 and inbox["channel_type"] == "Channel::Api"
    again = httpx.post(url, headers=cw_headers, json={"inbox_id": 1, "source_id": "conv-2"})
    assert again.json() == made.json()
    generated = httpx.post(url, headers=cw_headers, json={"inbox_id": 1}).json()["source_id"]
    assert str(uuid.UUID(generated)) == generated
    [row] = _filter(api, cw_headers, "identifier", "equal_to", ["replybase:1:contact:7"]).json()[
        "payload"
    ]
    assert [ci["source_id"] for ci in row["contact_inboxes"]] == [
        created["contact_inbox"]["source_id"],
        "conv-2",
        generated,
    ]

    conversations = [
        httpx.post(
            api + "/conversations",
            headers=cw_headers,
            json={"inbox_id": 1, "contact_id": contact_id, "source_id": source_id},
        ).json()
        for source_id in (created["contact_inbox"]["source_id"], "conv-2")
    ]
    assert [c["meta"]["sender"]["id"] for c in conversations] == [contact_id, contact_id]
    listed = httpx.get(api + f"/contacts/{contact_id}/conversations", headers=cw_headers).json()
    assert len(listed["payload"]) == 2

    other = httpx.post(
        api + "/contacts", headers=cw_headers, json={"inbox_id": 1, "name": "Bob"}
    ).json()["payload"]["contact"]["id"]
    # Another contact's source_id: RecordNotUnique (500 here, 422 creating a conversation).
    held = httpx.post(
        api + f"/contacts/{other}/contact_inboxes",
        headers=cw_headers,
        json={"inbox_id": 1, "source_id": "conv-2"},
    )
    assert held.status_code == 500
    wrong = httpx.post(
        api + "/conversations",
        headers=cw_headers,
        json={"inbox_id": 1, "contact_id": other, "source_id": "conv-2"},
    )
    assert (wrong.status_code, wrong.json()) == (422, {"error": "source_id should be unique"})
    for path, body in (
        ("/contacts/999/contact_inboxes", {"inbox_id": 1}),
        (f"/contacts/{contact_id}/contact_inboxes", {"inbox_id": 2}),
    ):
        missing = httpx.post(api + path, headers=cw_headers, json=body)
        assert (missing.status_code, missing.json()) == (
            404,
            {"error": "Resource could not be found"},
        )
    assert httpx.post(url, json={"inbox_id": 1}).status_code == 401


def test_chatwoot_contact_update(chatwoot_standin, cw_headers):
    api = chatwoot_standin.url + "/api/v1/accounts/1"
    for email in ("a@example.com", "b@example.com"):
        httpx.post(api + "/contacts", headers=cw_headers, json={"inbox_id": 1, "email": email})
    bee = api + "/contacts/2"
    httpx.put(bee, headers=cw_headers, json={"additional_attributes": {"city": "Ghent"}})

    taken = httpx.put(bee, headers=cw_headers, json={"name": "Bee", "email": "A@example.com"})
    assert (taken.status_code, taken.json()) == (
        422,
        {"message": "Email has already been taken", "attributes": ["email"]},
    )
    httpx.put(api + "/contacts/1", headers=cw_headers, json={"identifier": "ours:1"})
    both = httpx.put(
        bee, headers=cw_headers, json={"email": "a@example.com", "identifier": "ours:1"}
    )
    assert both.json() == {  # every failed validation at once, as Rails' full_messages
        "message": "Email has already been taken, Identifier has already been taken",
        "attributes": ["email", "identifier"],
    }
    kept = httpx.put(
        bee,
        headers=cw_headers,
        json={"name": "Bee", "additional_attributes": {"email": "a@example.com"}},
    )
    assert kept.status_code == 200
    contact = kept.json()["payload"]
    assert (contact["id"], contact["name"], contact["email"]) == (2, "Bee", "b@example.com")
    assert contact["additional_attributes"] == {"city": "Ghent", "email": "a@example.com"}
    assert contact["contact_inboxes"][0]["inbox"]["id"] == 1
    own = httpx.patch(bee, headers=cw_headers, json={"email": "B@Example.COM"})
    assert own.status_code == 200 and own.json()["payload"]["email"] == "b@example.com"

    unknown = httpx.put(api + "/contacts/999", headers=cw_headers, json={"name": "x"})
    assert (unknown.status_code, unknown.json()) == (404, {"error": "Resource could not be found"})
    assert httpx.put(bee, json={"name": "x"}).status_code == 401


def test_chatwoot_toggle_status(chatwoot_standin, cw_headers):
    conversation = chatwoot_standin.seed_conversation()
    url = chatwoot_standin.url + f"/api/v1/accounts/1/conversations/{conversation['id']}"

    toggled = httpx.post(url + "/toggle_status", headers=cw_headers, json={"status": "resolved"})
    assert toggled.json() == {
        "meta": {},
        "payload": {
            "success": True,
            "conversation_id": conversation["id"],
            "current_status": "resolved",
            "snoozed_until": None,
        },
    }
    assert httpx.get(url, headers=cw_headers).json()["status"] == "resolved"
    activity = httpx.get(url + "/messages", headers=cw_headers).json()["payload"][-1]
    assert activity["message_type"] == 2
    assert activity["content"] == "Conversation was marked resolved by Sam Agent"
    # Without a status, toggle_status flips resolved back to open.
    reopened = httpx.post(url + "/toggle_status", headers=cw_headers, json={})
    assert reopened.json()["payload"]["current_status"] == "open"


# -- Chatwoot webhooks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message_type", "private", "sender_type"),
    [
        ("customer", "incoming", False, "contact"),
        ("agent", "outgoing", False, "user"),
        ("private_note", "outgoing", True, "user"),
        ("activity", "activity", False, None),
    ],
)
def test_make_webhook_message_created(kind, message_type, private, sender_type):
    payload = make_webhook("message_created", kind=kind, conversation_id=42, content="Hello")

    assert payload["event"] == "message_created"
    assert payload["content"] == "Hello"
    assert payload["message_type"] == message_type  # webhooks: names, not integers
    assert payload["private"] is private
    assert (payload["sender"] or {}).get("type") == sender_type
    assert payload["conversation"]["id"] == 42
    assert payload["conversation"]["status"] == "open"
    assert payload["account"] == {"id": 1, "name": "Acme Support"}
    assert payload["created_at"].endswith("Z")


def test_make_webhook_conversation_status_changed():
    payload = make_webhook("conversation_status_changed", conversation_id=7, status="resolved")

    assert payload["event"] == "conversation_status_changed"
    assert payload["id"] == 7
    assert payload["status"] == "resolved"
    assert payload["changed_attributes"] == [
        {"status": {"previous_value": "open", "current_value": "resolved"}}
    ]
    assert "account" not in payload  # Conversation#webhook_data carries no account object


def test_standin_make_webhook_uses_its_own_store(chatwoot_standin, cw_headers):
    conversation = chatwoot_standin.seed_conversation(contact_name="Bo")

    payload = chatwoot_standin.make_webhook(
        "message_created", conversation_id=conversation["id"], content="Is it shipped?"
    )
    assert payload["sender"]["name"] == "Bo"
    listed = httpx.get(
        chatwoot_standin.url + f"/api/v1/accounts/1/conversations/{conversation['id']}/messages",
        headers=cw_headers,
    ).json()
    assert [m["id"] for m in listed["payload"]] == [payload["id"]]


def test_deliver_webhook_signs_like_chatwoot(receiver):
    payload = make_webhook("message_created", content="Fish & <chips> – £5")

    response = deliver_webhook(receiver.url + "/hooks/chatwoot", payload, secret="s3cret")

    assert response.status_code == 200
    request = receiver.last_request
    timestamp = request.headers["x-chatwoot-timestamp"]
    expected = hmac.new(b"s3cret", timestamp.encode() + b"." + request.body, hashlib.sha256)
    assert request.headers["x-chatwoot-signature"] == "sha256=" + expected.hexdigest()
    assert abs(int(timestamp) - time.time()) < 5
    uuid.UUID(request.headers["x-chatwoot-delivery"])
    assert request.headers["content-type"] == "application/json"
    assert request.json == payload
    # Rails' to_json, byte for byte: compact, UTF-8, with <, > and & escaped; so a receiver
    # must verify the raw body, never a re-serialisation of the parsed one.
    assert b'"content":"Fish \\u0026 \\u003cchips\\u003e \xe2\x80\x93 \xc2\xa35"' in request.body
    assert json.dumps(request.json).encode() != request.body


def test_deliver_webhook_options(receiver):
    url = receiver.url + "/hooks/chatwoot"
    payload = make_webhook("message_created")

    deliver_webhook(url, payload, secret="s3cret", timestamp=1700000000, delivery_id="d-1")
    pinned = receiver.last_request
    assert pinned.headers["x-chatwoot-timestamp"] == "1700000000"
    assert pinned.headers["x-chatwoot-delivery"] == "d-1"
    expected = hmac.new(b"s3cret", b"1700000000." + pinned.body, hashlib.sha256).hexdigest()
    assert pinned.headers["x-chatwoot-signature"] == f"sha256={expected}"

    deliver_webhook(url, payload, secret="s3cret", sign=False)
    assert "x-chatwoot-signature" not in receiver.last_request.headers
    assert "x-chatwoot-timestamp" not in receiver.last_request.headers

    deliver_webhook(url, payload, secret="s3cret", tampered_body=b'{"event":"forged"}')
    forged = receiver.last_request
    recomputed = hmac.new(
        b"s3cret",
        forged.headers["x-chatwoot-timestamp"].encode() + b"." + forged.body,
        hashlib.sha256,
    ).hexdigest()
    assert forged.headers["x-chatwoot-signature"] != f"sha256={recomputed}"


def test_api_actions_send_webhooks_back(receiver):
    chatwoot = ChatwootStandin(
        webhook_url=receiver.url + "/hooks/chatwoot", webhook_secret="s3cret"
    ).start()
    try:
        conversation = chatwoot.seed_conversation()
        api = chatwoot.url + f"/api/v1/accounts/1/conversations/{conversation['id']}"
        headers = {"api_access_token": chatwoot.api_token}
        httpx.post(api + "/messages", headers=headers, json={"content": "Note", "private": True})
        httpx.post(api + "/toggle_status", headers=headers, json={"status": "resolved"})

        deliveries = chatwoot.wait_for_deliveries(2)
        received = receiver.wait_for_requests("POST /hooks/chatwoot", 2)
    finally:
        chatwoot.stop()
    assert sorted(d["event"] for d in deliveries) == [
        "conversation_status_changed",
        "message_created",
    ]
    assert all(d["status"] == 200 for d in deliveries)
    by_event = {r.json["event"]: r.json for r in received}
    assert by_event["message_created"]["private"] is True  # Chatwoot sends private notes too
    assert by_event["conversation_status_changed"]["status"] == "resolved"


@pytest.mark.parametrize(
    ("kind", "error"), [("down", httpx.RemoteProtocolError), ("hang", httpx.ReadTimeout)]
)
def test_chatwoot_fault_after_apply_stores_then_loses_the_answer(
    chatwoot_standin, cw_headers, kind, error
):
    conv = chatwoot_standin.seed_conversation()
    route = "POST /api/v1/accounts/*/conversations/*/messages"
    url = f"{chatwoot_standin.url}/api/v1/accounts/1/conversations/{conv['id']}/messages"
    chatwoot_standin.set_fault_after_apply(kind, route=route, seconds=2)
    started = time.monotonic()
    with pytest.raises(error):
        httpx.post(url, headers=cw_headers, json={"content": "First"}, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert [m["content"] for m in chatwoot_standin.messages(conv["id"])] == ["First"]

    answered = httpx.post(url, headers=cw_headers, json={"content": "Second"})  # times=1 used
    assert answered.status_code == 200 and answered.json()["content"] == "Second"


def test_chatwoot_fault_after_apply_status_and_clearing(chatwoot_standin, cw_headers):
    url = chatwoot_standin.url + "/api/v1/accounts/1/contacts"
    chatwoot_standin.set_fault_after_apply(
        "status", route="POST */contacts", status=502, times=None
    )
    first = httpx.post(url, headers=cw_headers, json={"name": "Ann", "inbox_id": 1})
    second = httpx.post(url, headers=cw_headers, json={"name": "Bob", "inbox_id": 1})
    assert (first.status_code, second.status_code) == (502, 502)
    assert first.json() == {"error": "Bad Gateway"}
    assert [c["name"] for c in chatwoot_standin.contacts] == ["Ann", "Bob"]

    chatwoot_standin.clear_faults()
    assert httpx.post(url, headers=cw_headers, json={"name": "Cy", "inbox_id": 1}).is_success
    with pytest.raises(ValueError, match="unknown fault"):
        chatwoot_standin.set_fault_after_apply("malformed", route="POST */contacts")
