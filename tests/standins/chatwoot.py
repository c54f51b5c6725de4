"""A Chatwoot peer: the REST API our support integration calls, and Chatwoot's webhooks.

Mirrors Chatwoot's own code (``config/routes.rb``, the jbuilder views, ``Message#webhook_data``,
``Conversations::EventDataPresenter``, ``Webhooks::Trigger``):

- ``GET /health`` → ``{"status": "woot"}``; ``GET /api`` → versions and service states.
  There is no ``/rails/health`` route: unknown paths get Rails' HTML 404 page.
- Contacts: ``identifier`` (like email and phone number) is unique per account, so a
  second create with it is a 422. ``POST /contacts/filter`` takes Chatwoot's filter
  payload (``attribute_key``, ``filter_operator``, ``values``, ``query_operator``;
  standard text attributes compare case-insensitively, 15 a page);
  ``GET /contacts/{id}/conversations`` lists the contact's latest 20 conversations.
- ``GET /conversations/{id}/messages`` is ``MessageFinder``: the latest 20 messages,
  ``before=<id>`` the 20 before that one, ``after=<id>`` the 100 after it.
  ``PUT``/``PATCH /contacts/{id}`` updates the given keys (``additional_attributes`` and
  ``custom_attributes`` are merged) with the same uniqueness 422s, answering
  ``{"payload": <contact>}``.
- Contact inboxes (``ContactInboxBuilder``): ``POST /contacts/{id}/contact_inboxes`` with
  ``inbox_id`` and an optional ``source_id`` (a UUID when absent) finds or creates that
  contact's link to the inbox and answers ``{"source_id", "inbox"}``; a source_id another
  contact holds in the inbox is a 500 (``RecordNotUnique``, unhandled there).
  ``POST /conversations`` with a ``source_id`` uses that contact inbox; naming another
  ``contact_id`` is a 422 ``source_id should be unique``.
- Auth is the ``api_access_token`` header. No header → 401
  ``{"errors": ["You need to sign in or sign up before continuing."]}`` (Devise);
  a wrong token → 401 ``{"error": "Invalid Access Token"}``.
- REST messages carry ``message_type`` as an integer (0 incoming, 1 outgoing, 2 activity,
  3 template) and ``created_at`` as epoch seconds; webhook payloads carry the enum name
  (``"incoming"``) and ``created_at`` as ISO-8601. Conversation ``id`` is the per-account
  display id.
- Webhooks: the raw body is Rails' ``to_json`` (compact; ``<``, ``>``, ``&`` escaped as
  ``\\u003c`` …), signed ``sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`` in
  ``X-Chatwoot-Signature`` with ``X-Chatwoot-Timestamp`` and a UUID ``X-Chatwoot-Delivery``.
  Chatwoot never sends ``message_created`` for activity messages, but does for private notes.
- Besides the base faults (applied before the request is handled), ``set_fault_after_apply``
  lets a route do its work (store the message, the conversation) and then lose the answer:
  ``down`` closes the connection unanswered, ``hang`` waits ``seconds`` and closes it
  unanswered (the client times out), ``status`` answers an error (a proxy's 502/504).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import httpx

from tests.standins.base import (
    MAX_HANG_SECONDS,
    Fault,
    RecordedRequest,
    Response,
    StandinServer,
    route_matches,
)

MESSAGE_TYPES = {"incoming": 0, "outgoing": 1, "activity": 2, "template": 3}
STATUSES = ("open", "resolved", "pending", "snoozed")
AFTER_APPLY_FAULTS = ("down", "hang", "status")
CONTACTS_PER_PAGE = 15  # ContactsController::RESULTS_PER_PAGE
CONTACT_CONVERSATIONS_LIMIT = 20
MESSAGES_PAGE = 20  # MessageFinder: the latest 20, or the 20 before `before=<id>`
MESSAGES_AFTER_PAGE = 100  # MessageFinder: the 100 after `after=<id>`
# lib/filters/filter_keys.yml: the standard contact attributes and their operators.
CONTACT_FILTER_KEYS = {
    "name": ("equal_to", "not_equal_to", "contains", "does_not_contain"),
    "phone_number": ("equal_to", "not_equal_to", "contains", "does_not_contain", "starts_with"),
    "email": ("equal_to", "not_equal_to", "contains", "does_not_contain"),
    "identifier": ("equal_to", "not_equal_to"),
}
DEFAULT_API_TOKEN = "cw-standin-token"  # a stand-in's fake credential
WEBHOOK_TIMEOUT = 5.0  # Chatwoot's default WEBHOOK_TIMEOUT, in seconds
SIGN_IN_REQUIRED = {"errors": ["You need to sign in or sign up before continuing."]}
NOT_FOUND = {"error": "Resource could not be found"}
RAILS_404_PAGE = (
    b"<!DOCTYPE html>\n<html>\n<head>\n  <title>The page you were looking for doesn't exist "
    b"(404)</title>\n</head>\n<body>\n  <h1>The page you were looking for doesn't exist.</h1>\n"
    b"</body>\n</html>\n"
)
# kind -> (message_type, private, sender)
MESSAGE_KINDS = {
    "customer": ("incoming", False, "contact"),
    "agent": ("outgoing", False, "user"),
    "private_note": ("outgoing", True, "user"),
    "bot": ("outgoing", False, "agent_bot"),
    "activity": ("activity", False, None),
    "template": ("template", False, None),
}
MESSAGE_EVENTS = ("message_created", "message_updated")
CONVERSATION_EVENTS = (
    "conversation_created",
    "conversation_updated",
    "conversation_status_changed",
)
ACTIVITY_TEXT = {
    "resolved": "Conversation was marked resolved by {name}",
    "open": "Conversation was reopened by {name}",
    "pending": "Conversation was marked as pending by {name}",
    "snoozed": "Conversation was snoozed by {name}",
}


def rails_json(payload: Any) -> bytes:
    """Serialise as Rails' ``to_json`` does: compact UTF-8, HTML-significant chars escaped."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text.encode()


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Chatwoot-Signature`` for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def deliver_webhook(
    url: str,
    payload: dict,
    *,
    secret: str | None,
    timestamp: int | str | None = None,
    delivery_id: str | None = None,
    sign: bool = True,
    tampered_body: bytes | None = None,
    timeout: float = WEBHOOK_TIMEOUT,
) -> httpx.Response:
    """POST ``payload`` to ``url`` exactly as Chatwoot's ``Webhooks::Trigger`` does.

    Without a secret (or with ``sign=False``) Chatwoot sends no timestamp or signature.
    ``tampered_body`` is sent instead of the signed body, to test signature checks.
    """
    body = rails_json(payload)
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-Chatwoot-Delivery": delivery_id or str(uuid.uuid4()),
    }
    if sign and secret:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers["X-Chatwoot-Timestamp"] = ts
        headers["X-Chatwoot-Signature"] = sign_webhook(secret, ts, body)
    content = body if tampered_body is None else tampered_body
    return httpx.post(url, content=content, headers=headers, timeout=timeout)


def make_webhook(event: str, *, account_id: int = 1, inbox_id: int = 1, **fields: Any) -> dict:
    """A realistic payload without a running stand-in; see ``ChatwootStandin.make_webhook``."""
    return ChatwootStandin(account_id=account_id, inbox_id=inbox_id).make_webhook(event, **fields)


def _iso(ts: float | None) -> str | None:
    """Rails' JSON form of a time: ``2021-07-23T18:02:48.000Z``."""
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _int(ts: float | None) -> int:
    return int(ts) if ts is not None else 0  # Ruby's nil.to_i


class ChatwootStandin(StandinServer):
    """One Chatwoot account with one inbox and one agent, held in memory.

    Set ``webhook_url`` (and ``webhook_secret``) to have API actions send their webhooks
    back, from a background thread as Chatwoot's job queue would; outcomes land in
    ``deliveries``.
    """

    name = "chatwoot-standin"

    def __init__(
        self,
        *,
        account_id: int = 1,
        api_token: str = DEFAULT_API_TOKEN,
        inbox_id: int = 1,
        account_name: str = "Acme Support",
        inbox_name: str = "Website chat",
        channel_type: str = "Channel::Api",
        user_id: int = 1,
        user_name: str = "Sam Agent",
        user_email: str = "sam.agent@example.com",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_events: tuple[str, ...] = ("message_created", "conversation_status_changed"),
    ) -> None:
        super().__init__()
        self.account_id, self.account_name = account_id, account_name
        self.api_token = api_token
        self.inbox_id, self.inbox_name, self.channel_type = inbox_id, inbox_name, channel_type
        self.user_id, self.user_name, self.user_email = user_id, user_name, user_email
        self.webhook_url, self.webhook_secret = webhook_url, webhook_secret
        self.webhook_events = webhook_events
        self.queue_services = self.data_services = "ok"  # what GET /api reports
        self.deliveries: list[dict] = []
        self._data = threading.RLock()
        self._in_flight: list[threading.Thread] = []  # webhook deliveries not yet done
        self._created = time.time()
        self._contacts: dict[int, dict] = {}
        self._contact_inboxes: dict[int, dict] = {}
        self._conversations: dict[int, dict] = {}
        self._messages: dict[int, dict] = {}
        self._last_id = {"contact": 0, "contact_inbox": 0, "conversation": 0, "message": 0}
        self._after_apply_faults: list[tuple[str, Fault]] = []
        self._answer = threading.local()  # the after-apply fault of this handler's request

        account = r"/api/v1/accounts/(?P<account_id>\d+)"
        conversation = account + r"/conversations/(?P<conversation_id>\d+)"
        self.add_route("GET", "/health", lambda request: Response(200, {"status": "woot"}))
        self.add_route("GET", "/api", self._api_status)
        self.add_route("GET", "/api/v1/profile", self._authed(self._profile))
        contact = account + r"/contacts/(?P<contact_id>\d+)"
        self.add_route("POST", account + "/contacts", self._authed(self._create_contact))
        self.add_route("POST", account + "/contacts/filter", self._authed(self._filter_contacts))
        self.add_route("PUT", contact, self._authed(self._update_contact))
        self.add_route("PATCH", contact, self._authed(self._update_contact))
        self.add_route("GET", contact + "/conversations", self._authed(self._contact_conversations))
        self.add_route(
            "POST", contact + "/contact_inboxes", self._authed(self._create_contact_inbox)
        )
        self.add_route("POST", account + "/conversations", self._authed(self._create_conversation))
        self.add_route("GET", conversation, self._authed(self._show_conversation))
        self.add_route("GET", conversation + "/messages", self._authed(self._list_messages))
        self.add_route("POST", conversation + "/messages", self._authed(self._create_message))
        self.add_route("POST", conversation + "/toggle_status", self._authed(self._toggle_status))

    # -- what tests read and seed -------------------------------------------------------
    @property
    def contacts(self) -> list[dict]:
        with self._data:
            return [dict(c) for c in self._contacts.values()]

    @property
    def contact_inboxes(self) -> list[dict]:
        with self._data:
            return [dict(ci) for ci in self._contact_inboxes.values()]

    @property
    def conversations(self) -> list[dict]:
        with self._data:
            return [dict(c) for c in self._conversations.values()]

    def messages(self, conversation_id: int) -> list[dict]:
        """Stored messages of a conversation, oldest first (``message_type`` as a name)."""
        with self._data:
            return [
                dict(m) for m in self._messages.values() if m["conversation_id"] == conversation_id
            ]

    def seed_conversation(
        self,
        *,
        conversation_id: int | None = None,
        contact_name: str = "Jane Customer",
        email: str | None = None,
        status: str = "open",
        source_id: str | None = None,
    ) -> dict:
        """A contact and a conversation already in Chatwoot; returns the REST conversation."""
        with self._data:
            contact = self._new_contact(name=contact_name, email=email)
            contact_inbox = self._new_contact_inbox(contact, source_id)
            conv = self._new_conversation(contact_inbox, status=status, display_id=conversation_id)
            return self._conversation_rest(conv)

    def make_webhook(
        self,
        event: str,
        *,
        kind: str = "customer",
        conversation_id: int | None = None,
        content: str | None = "Hi, where is my order?",
        status: str = "resolved",
        **overrides: Any,
    ) -> dict:
        """Build the payload Chatwoot would send for ``event``, updating the store to match.

        ``message_*`` events: a message of ``kind`` (customer, agent, private_note, bot,
        activity, template) is added to ``conversation_id`` (seeded if unknown).
        ``conversation_status_changed``: the conversation moves to ``status`` and the
        payload lists ``changed_attributes``. ``overrides`` replace top-level keys.
        """
        with self._data:
            conv = self._conversations.get(conversation_id) if conversation_id else None
            if conv is None:
                contact = self._new_contact(name="Jane Customer")
                conv = self._new_conversation(
                    self._new_contact_inbox(contact), display_id=conversation_id
                )
            if event in MESSAGE_EVENTS:
                message_type, private, sender = MESSAGE_KINDS[kind]
                message = self._new_message(conv, content, message_type, private, sender)
                payload = {**self._message_webhook(message), "event": event}
            elif event in CONVERSATION_EVENTS:
                previous = conv["status"]
                if event == "conversation_status_changed":
                    self._set_status(conv, status)
                payload = {**self._conversation_webhook(conv), "event": event}
                if event != "conversation_created":
                    payload["changed_attributes"] = [
                        {"status": {"previous_value": previous, "current_value": conv["status"]}}
                    ]
            else:
                raise ValueError(f"unsupported event {event!r}")
        payload.update(overrides)
        return payload

    def wait_for_deliveries(self, count: int = 1, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            with self._data:
                if len(self.deliveries) >= count:
                    return list(self.deliveries)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.deliveries)}/{count} webhook deliveries")
            time.sleep(0.01)

    # -- faults after the work is done --------------------------------------------------
    def set_fault_after_apply(
        self,
        kind: str,
        *,
        route: str,
        seconds: float | None = None,
        status: int = 502,
        times: int | None = 1,
    ) -> None:
        """Handle requests to ``route`` (store what they create), then lose the answer:
        ``down`` / ``hang`` / ``status``; by default for the next request only."""
        if kind not in AFTER_APPLY_FAULTS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {AFTER_APPLY_FAULTS}")
        if seconds is None:
            seconds = MAX_HANG_SECONDS if kind == "hang" else 1.0
        fault = Fault(kind, min(seconds, MAX_HANG_SECONDS), status, times=times)
        with self._lock:
            self._after_apply_faults = [(p, f) for p, f in self._after_apply_faults if p != route]
            self._after_apply_faults.append((route, fault))

    def clear_faults(self) -> None:
        super().clear_faults()
        with self._lock:
            self._after_apply_faults.clear()

    def _take_after_apply_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for pattern, fault in reversed(self._after_apply_faults):
                if route_matches(pattern, method, path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._after_apply_faults = [
                                (p, f) for p, f in self._after_apply_faults if f is not fault
                            ]
                    return fault
            return None

    def _dispatch(self, request: RecordedRequest) -> Response:
        response = super()._dispatch(request)
        self._answer.fault = self._take_after_apply_fault(request.method, request.path)
        return response

    def _send(self, handler, response: Response) -> None:
        fault, self._answer.fault = getattr(self._answer, "fault", None), None
        if fault is None:
            super()._send(handler, response)
        elif fault.kind == "status":
            super()._send(handler, Response(fault.status, self.error_body(fault.status)))
        else:  # down, or hang then close: the work is done, the answer never comes
            if fault.kind == "hang":
                self._stopping.wait(fault.seconds)
            handler.close_connection = True

    # -- wire-format plumbing -----------------------------------------------------------
    def encode_json(self, body: Any) -> bytes:
        return rails_json(body)

    def error_body(self, status: int, message: str | None = None) -> dict:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return {"error": message or phrase}

    def not_found(self, request: RecordedRequest) -> Response:
        return Response(404, RAILS_404_PAGE, {"Content-Type": "text/html; charset=UTF-8"})

    def _authed(self, handler: Callable[..., Response]) -> Callable[..., Response]:
        def guarded(request: RecordedRequest, account_id: str | None = None, **kwargs: Any):
            token = request.headers.get("api_access_token") or request.headers.get(
                "api-access-token"
            )
            if not token:
                return Response(401, SIGN_IN_REQUIRED)
            if token != self.api_token:
                return Response(401, {"error": "Invalid Access Token"})
            if account_id is not None and int(account_id) != self.account_id:
                return Response(401, {"error": "You are not authorized to access this account"})
            body = request.json if isinstance(request.json, dict) else {}
            with self._data:
                return handler(request, body, **kwargs)

        return guarded

    def _emit(self, event: str, payload: dict) -> None:
        if not self.webhook_url or event not in self.webhook_events:
            return
        url, secret = self.webhook_url, self.webhook_secret

        def deliver() -> None:
            try:
                response = deliver_webhook(url, payload, secret=secret)
                outcome = {"event": event, "payload": payload, "status": response.status_code}
            except httpx.HTTPError as exc:
                outcome = {"event": event, "payload": payload, "error": repr(exc)}
            with self._data:
                self.deliveries.append(outcome)

        thread = threading.Thread(target=deliver, name="chatwoot-webhook", daemon=True)
        with self._data:
            self._in_flight = [t for t in self._in_flight if t.is_alive()] + [thread]
        thread.start()

    def stop(self) -> None:
        """Also wait for webhooks still being delivered: one landing in our live server
        after its test ended would touch a database that is no longer the test's."""
        # A delivery being handled can start another (our handler posts a note, which
        # emits message_created), so wait until none is left, not only for today's.
        deadline = time.monotonic() + 4 * (WEBHOOK_TIMEOUT + 1)
        while time.monotonic() < deadline:
            with self._data:
                in_flight, self._in_flight = self._in_flight, []
            if not in_flight:
                break
            for thread in in_flight:
                thread.join(max(0.0, deadline - time.monotonic()))
        super().stop()

    # -- store ----------------------------------------------------------------------------
    def _next_id(self, kind: str, wanted: int | None = None) -> int:
        """Auto-increment, or take ``wanted`` and carry on above it."""
        self._last_id[kind] = (
            max(self._last_id[kind], wanted) if wanted else self._last_id[kind] + 1
        )
        return wanted or self._last_id[kind]

    def _new_contact(self, *, name: str = "", email: str | None = None, **fields: Any) -> dict:
        contact = {
            "id": self._next_id("contact"),
            "name": name or "",
            "email": email.lower() if email else None,
            "phone_number": fields.get("phone_number"),
            "identifier": fields.get("identifier"),
            "additional_attributes": fields.get("additional_attributes") or {},
            "custom_attributes": fields.get("custom_attributes") or {},
            "blocked": False,
            "created_at": time.time(),
        }
        self._contacts[contact["id"]] = contact
        return contact

    def _new_contact_inbox(self, contact: dict, source_id: str | None = None) -> dict:
        now = time.time()
        contact_inbox = {
            "id": self._next_id("contact_inbox"),
            "contact_id": contact["id"],
            "inbox_id": self.inbox_id,
            "source_id": source_id or str(uuid.uuid4()),
            "created_at": now,
            "updated_at": now,
            "hmac_verified": False,
            "pubsub_token": uuid.uuid4().hex[:24],
        }
        self._contact_inboxes[contact_inbox["id"]] = contact_inbox
        return contact_inbox

    def _new_conversation(
        self,
        contact_inbox: dict,
        *,
        status: str = "open",
        display_id: int | None = None,
        **fields: Any,
    ) -> dict:
        now = time.time()
        conv = {
            "id": self._next_id("conversation", display_id),
            "uuid": str(uuid.uuid4()),
            "contact_id": contact_inbox["contact_id"],
            "contact_inbox_id": contact_inbox["id"],
            "inbox_id": self.inbox_id,
            "status": status,
            "snoozed_until": None,
            "additional_attributes": fields.get("additional_attributes") or {},
            "custom_attributes": fields.get("custom_attributes") or {},
            "labels": [],
            "priority": None,
            "created_at": now,
            "updated_at": now,
            "last_activity_at": now,
            "first_reply_created_at": None,
            "waiting_since": None,
        }
        self._conversations[conv["id"]] = conv
        return conv

    def _new_message(
        self,
        conv: dict,
        content: str | None,
        message_type: str,
        private: bool,
        sender: str | None,
        **fields: Any,
    ) -> dict:
        now = time.time()
        sender_id = {"contact": conv["contact_id"], "user": self.user_id, "agent_bot": 1}
        message = {
            "id": self._next_id("message"),
            "conversation_id": conv["id"],
            "content": content,
            "message_type": message_type,
            "private": private,
            "content_type": fields.get("content_type") or "text",
            "content_attributes": fields.get("content_attributes") or {},
            "additional_attributes": {},
            "source_id": fields.get("source_id"),
            "status": "sent",
            "sender_type": sender,
            "sender_id": sender_id.get(sender) if sender else None,
            "created_at": now,
        }
        self._messages[message["id"]] = message
        conv["last_activity_at"] = conv["updated_at"] = now
        if message_type == "incoming" and conv["waiting_since"] is None:
            conv["waiting_since"] = now
        if message_type == "outgoing" and sender == "user" and not private:
            conv["waiting_since"] = None
            conv["first_reply_created_at"] = conv["first_reply_created_at"] or now
        return message

    def _set_status(self, conv: dict, status: str) -> None:
        conv["status"] = status
        conv["updated_at"] = time.time()
        if status in ACTIVITY_TEXT:
            text = ACTIVITY_TEXT[status].format(name=self.user_name)
            self._new_message(conv, text, "activity", False, None)

    # -- serialisers (mirroring Chatwoot's jbuilder views and webhook_data) ------------------
    def _account_webhook(self) -> dict:
        return {"id": self.account_id, "name": self.account_name}

    def _inbox_slim(self) -> dict:
        return {
            "id": self.inbox_id,
            "name": self.inbox_name,
            "channel_type": self.channel_type,
            "channel_id": 1,
            "avatar_url": "",
        }

    def _inbox_record(self) -> dict:
        return {
            **self._inbox_slim(),
            "account_id": self.account_id,
            "created_at": _iso(self._created),
            "updated_at": _iso(self._created),
            "enable_auto_assignment": True,
            "greeting_enabled": False,
            "greeting_message": None,
            "timezone": "UTC",
            "lock_to_single_conversation": False,
            "allow_messages_after_resolved": True,
        }

    def _contact_push(self, contact: dict) -> dict:
        keys = ("additional_attributes", "custom_attributes", "email", "id", "identifier", "name")
        return {
            **{k: contact[k] for k in keys},
            "phone_number": contact["phone_number"],
            "thumbnail": "",
            "blocked": contact["blocked"],
            "type": "contact",
        }

    def _contact_rest(self, contact: dict) -> dict:
        inboxes = [ci for ci in self._contact_inboxes.values() if ci["contact_id"] == contact["id"]]
        return {
            **self._contact_push(contact),
            "availability_status": "offline",
            "created_at": _int(contact["created_at"]),
            "last_activity_at": None,
            "contact_inboxes": [
                {"source_id": ci["source_id"], "inbox": self._inbox_slim()} for ci in inboxes
            ],
        }

    def _sender(self, message: dict, *, webhook: bool) -> dict | None:
        kind = message["sender_type"]
        if kind == "contact":
            contact = self._contacts[message["sender_id"]]
            if webhook:
                return {
                    "account": self._account_webhook(),
                    **self._contact_push(contact),
                    "avatar": "",
                }
            return self._contact_push(contact)
        if kind == "user":
            if webhook:
                return {
                    "id": self.user_id,
                    "name": self.user_name,
                    "email": self.user_email,
                    "type": "user",
                }
            return {
                "id": self.user_id,
                "name": self.user_name,
                "available_name": self.user_name,
                "avatar_url": "",
                "type": "user",
                "availability_status": "online",
                "thumbnail": "",
            }
        if kind == "agent_bot":
            return {"id": 1, "name": "Standin Bot", "avatar_url": "", "type": "agent_bot"}
        return None

    def _message_rest(self, message: dict) -> dict:
        data = {
            "id": message["id"],
            "content": message["content"],
            "inbox_id": self.inbox_id,
            "conversation_id": message["conversation_id"],
            "message_type": MESSAGE_TYPES[message["message_type"]],
            "content_type": message["content_type"],
            "status": message["status"],
            "content_attributes": message["content_attributes"],
            "created_at": _int(message["created_at"]),
            "private": message["private"],
            "source_id": message["source_id"],
        }
        if (sender := self._sender(message, webhook=False)) is not None:
            data["sender"] = sender
        return data

    def _message_push(self, message: dict) -> dict:
        """``Message#push_event_data``: the form inside a conversation's ``messages``."""
        conv = self._conversations[message["conversation_id"]]
        contact_inbox = self._contact_inboxes[conv["contact_inbox_id"]]
        data = {
            **self._message_rest(message),
            "account_id": self.account_id,
            "updated_at": _iso(message["created_at"]),
            "sender_type": (message["sender_type"] or "").title().replace("_", "") or None,
            "sender_id": message["sender_id"],
            "external_source_ids": {},
            "additional_attributes": message["additional_attributes"],
            "processed_message_content": message["content"],
            "conversation": {
                "assignee_id": None,
                "unread_count": self._unread_count(conv),
                "last_activity_at": _int(conv["last_activity_at"]),
                "contact_inbox": {"source_id": contact_inbox["source_id"]},
            },
        }
        return data

    def _chat_messages(self, conv: dict) -> list[dict]:
        """Chatwoot's ``messages.chat`` scope: no activity messages, no private notes."""
        return [
            m
            for m in self._messages.values()
            if m["conversation_id"] == conv["id"]
            and m["message_type"] != "activity"
            and not m["private"]
        ]

    def _unread_count(self, conv: dict) -> int:
        return sum(1 for m in self._chat_messages(conv) if m["message_type"] == "incoming")

    def _conversation_rest(self, conv: dict) -> dict:
        contact = self._contacts[conv["contact_id"]]
        all_messages = [m for m in self._messages.values() if m["conversation_id"] == conv["id"]]
        non_activity = [m for m in all_messages if m["message_type"] != "activity"]
        return {
            "meta": {
                "sender": self._contact_rest(contact),
                "channel": self.channel_type,
                "hmac_verified": False,
            },
            "id": conv["id"],
            "messages": [self._message_push(all_messages[-1])] if all_messages else [],
            "account_id": self.account_id,
            "uuid": conv["uuid"],
            "additional_attributes": conv["additional_attributes"],
            "agent_last_seen_at": 0,
            "assignee_last_seen_at": 0,
            "can_reply": True,
            "contact_last_seen_at": 0,
            "custom_attributes": conv["custom_attributes"],
            "inbox_id": self.inbox_id,
            "labels": conv["labels"],
            "muted": False,
            "snoozed_until": conv["snoozed_until"],
            "status": conv["status"],
            "created_at": _int(conv["created_at"]),
            "timestamp": _int(conv["last_activity_at"]),
            "first_reply_created_at": _int(conv["first_reply_created_at"]),
            "unread_count": self._unread_count(conv),
            "last_non_activity_message": self._message_push(non_activity[-1])
            if non_activity
            else None,
            "last_activity_at": _int(conv["last_activity_at"]),
            "priority": conv["priority"],
            "waiting_since": _int(conv["waiting_since"]),
        }

    def _conversation_webhook(self, conv: dict) -> dict:
        """``Conversation#webhook_data``; note it has no top-level ``account``."""
        contact = self._contacts[conv["contact_id"]]
        contact_inbox = self._contact_inboxes[conv["contact_inbox_id"]]
        chat = self._chat_messages(conv)
        return {
            "additional_attributes": conv["additional_attributes"],
            "can_reply": True,
            "campaign": None,
            "campaign_id": None,
            "channel": self.channel_type,
            "contact_inbox": {
                **contact_inbox,
                "created_at": _iso(contact_inbox["created_at"]),
                "updated_at": _iso(contact_inbox["updated_at"]),
            },
            "id": conv["id"],
            "inbox_id": self.inbox_id,
            "messages": [self._message_push(chat[-1])] if chat else [],
            "labels": conv["labels"],
            "meta": {
                "sender": self._contact_push(contact),
                "assignee": None,
                "assignee_type": None,
                "team": None,
                "hmac_verified": False,
            },
            "status": conv["status"],
            "custom_attributes": conv["custom_attributes"],
            "snoozed_until": conv["snoozed_until"],
            "unread_count": self._unread_count(conv),
            "first_reply_created_at": _iso(conv["first_reply_created_at"]),
            "priority": conv["priority"],
            "waiting_since": _int(conv["waiting_since"]),
            "agent_last_seen_at": 0,
            "assignee_last_seen_at": 0,
            "contact_last_seen_at": 0,
            "last_activity_at": _int(conv["last_activity_at"]),
            "timestamp": _int(conv["last_activity_at"]),
            "created_at": _int(conv["created_at"]),
            "updated_at": conv["updated_at"],
        }

    def _message_webhook(self, message: dict) -> dict:
        """``Message#webhook_data`` (the caller adds ``event``)."""
        return {
            "account": self._account_webhook(),
            "additional_attributes": message["additional_attributes"],
            "content_attributes": message["content_attributes"],
            "content_type": message["content_type"],
            "content": message["content"],
            "conversation": self._conversation_webhook(
                self._conversations[message["conversation_id"]]
            ),
            "created_at": _iso(message["created_at"]),
            "id": message["id"],
            "inbox": {"id": self.inbox_id, "name": self.inbox_name},
            "message_type": message["message_type"],
            "private": message["private"],
            "sender": self._sender(message, webhook=True),
            "source_id": message["source_id"],
        }

    # -- routes -----------------------------------------------------------------------------
    def _api_status(self, request: RecordedRequest) -> Response:
        return Response(
            200,
            {
                "version": "4.4.0",
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "queue_services": self.queue_services,
                "data_services": self.data_services,
            },
        )

    def _profile(self, request: RecordedRequest, body: dict) -> Response:
        return Response(
            200,
            {
                "access_token": self.api_token,
                "account_id": self.account_id,
                "available_name": self.user_name,
                "avatar_url": "",
                "confirmed": True,
                "display_name": None,
                "message_signature": None,
                "email": self.user_email,
                "id": self.user_id,
                "inviter_id": None,
                "name": self.user_name,
                "provider": "email",
                "pubsub_token": "standinpubsubtoken000000",
                "role": "administrator",
                "ui_settings": {},
                "uid": self.user_email,
                "type": "User",
                "accounts": [
                    {
                        "id": self.account_id,
                        "name": self.account_name,
                        "status": "active",
                        "active_at": _iso(self._created),
                        "role": "administrator",
                        "availability": "online",
                        "availability_status": "online",
                        "auto_offline": True,
                    }
                ],
            },
        )

    def _create_contact(self, request: RecordedRequest, body: dict) -> Response:
        inbox_id = body.get("inbox_id")
        if inbox_id is not None and int(inbox_id) != self.inbox_id:
            return Response(404, NOT_FOUND)
        if (taken := self._unique_taken(body)) is not None:
            return taken
        contact = self._new_contact(**{k: v for k, v in body.items() if k != "inbox_id"})
        contact_inbox = (
            self._new_contact_inbox(contact, body.get("source_id"))
            if inbox_id is not None
            else None
        )
        return Response(
            200,
            {
                "payload": {
                    "contact": self._contact_rest(contact),
                    "contact_inbox": {
                        "inbox": self._inbox_record() if contact_inbox else None,
                        "source_id": contact_inbox["source_id"] if contact_inbox else None,
                    },
                }
            },
        )

    def _unique_taken(self, body: dict, *, contact_id: int | None = None) -> Response | None:
        """The 422 of ``Contact``'s uniqueness validations (email case-insensitively), all
        failing ones at once as Rails' ``full_messages`` joins them."""
        labels = {"email": "Email", "phone_number": "Phone number", "identifier": "Identifier"}
        taken = []
        for field in labels:
            value = body.get(field)
            if field == "email" and value:
                value = value.lower()
            if value and any(
                c[field] == value for c in self._contacts.values() if c["id"] != contact_id
            ):
                taken.append(field)
        if not taken:
            return None
        message = ", ".join(f"{labels[field]} has already been taken" for field in taken)
        return Response(422, {"message": message, "attributes": taken})

    def _update_contact(self, request: RecordedRequest, body: dict, contact_id: str) -> Response:
        """``ContactsController#update``: the permitted keys given are assigned, the two
        attribute hashes merged into the stored ones."""
        contact = self._contacts.get(int(contact_id))
        if contact is None:
            return Response(404, NOT_FOUND)
        if (taken := self._unique_taken(body, contact_id=contact["id"])) is not None:
            return taken
        for key in ("name", "email", "phone_number", "identifier", "blocked"):
            if key in body:
                value = body[key]
                contact[key] = value.lower() if key == "email" and value else value
        for key in ("additional_attributes", "custom_attributes"):
            if isinstance(body.get(key), dict):
                contact[key] = {**contact[key], **body[key]}
        return Response(200, {"payload": self._contact_rest(contact)})

    def _create_contact_inbox(
        self, request: RecordedRequest, body: dict, contact_id: str
    ) -> Response:
        """``ContactInboxesController#create`` through ``ContactInboxBuilder``:
        ``find_or_create_by!(contact_id, inbox_id, source_id)``."""
        contact = self._contacts.get(int(contact_id))
        inbox_id = body.get("inbox_id")
        if contact is None or inbox_id is None or int(inbox_id) != self.inbox_id:
            return Response(404, NOT_FOUND)
        source_id = str(body.get("source_id") or uuid.uuid4())
        held = [ci for ci in self._contact_inboxes.values() if ci["source_id"] == source_id]
        if held and held[0]["contact_id"] != contact["id"]:
            return Response(500, self.error_body(500))  # RecordNotUnique, not rescued
        contact_inbox = held[0] if held else self._new_contact_inbox(contact, source_id)
        return Response(
            200, {"source_id": contact_inbox["source_id"], "inbox": self._inbox_record()}
        )

    def _filter_contacts(self, request: RecordedRequest, body: dict) -> Response:
        """``Contacts::FilterService``: conditions joined left to right by the previous
        condition's ``query_operator`` (``and``/``or``)."""
        conditions = body.get("payload")
        if not isinstance(conditions, list) or not conditions:
            return Response(422, {"error": "Invalid attribute"})
        for condition in conditions:
            if not isinstance(condition, dict):
                return Response(422, {"error": "Invalid attribute"})
            key, operator = condition.get("attribute_key"), condition.get("filter_operator")
            if key not in CONTACT_FILTER_KEYS:
                return Response(422, {"error": f"Invalid attribute key - [{key}]"})
            if operator not in CONTACT_FILTER_KEYS[key]:
                return Response(422, {"error": f"Invalid filter operator - [{operator}]"})
            if not isinstance(condition.get("values"), list):
                return Response(422, {"error": "Invalid value"})

        def matches(contact: dict, condition: dict) -> bool:
            value = str(contact.get(condition["attribute_key"]) or "").lower()
            wanted = [str(v).lower() for v in condition["values"]]
            operator = condition["filter_operator"]
            if operator == "equal_to":
                return value in wanted
            if operator == "not_equal_to":
                return value not in wanted
            if operator == "contains":
                return any(w in value for w in wanted)
            if operator == "does_not_contain":
                return not any(w in value for w in wanted)
            return any(value.startswith(w) for w in wanted)  # starts_with

        found = []
        for contact in self._contacts.values():
            result = matches(contact, conditions[0])
            for previous, condition in itertools.pairwise(conditions):
                joined = str(previous.get("query_operator") or "and").lower()
                if joined == "or":
                    result = result or matches(contact, condition)
                else:
                    result = result and matches(contact, condition)
            if result:
                found.append(contact)
        params = {k: v[-1] for k, v in parse_qs(request.query).items()}
        page = params.get("page") or 1
        start = (max(int(page), 1) - 1) * CONTACTS_PER_PAGE
        return Response(
            200,
            {
                "meta": {"count": len(found), "current_page": page},
                "payload": [
                    self._contact_rest(c) for c in found[start : start + CONTACTS_PER_PAGE]
                ],
            },
        )

    def _contact_conversations(
        self, request: RecordedRequest, body: dict, contact_id: str
    ) -> Response:
        if int(contact_id) not in self._contacts:
            return Response(404, NOT_FOUND)
        conversations = sorted(
            (c for c in self._conversations.values() if c["contact_id"] == int(contact_id)),
            key=lambda c: c["id"],
            reverse=True,
        )[:CONTACT_CONVERSATIONS_LIMIT]
        return Response(200, {"payload": [self._conversation_rest(c) for c in conversations]})

    def _create_conversation(self, request: RecordedRequest, body: dict) -> Response:
        source_id, contact_id = body.get("source_id"), body.get("contact_id")
        if body.get("inbox_id") is not None and int(body["inbox_id"]) != self.inbox_id:
            return Response(404, NOT_FOUND)
        if source_id:
            found = [ci for ci in self._contact_inboxes.values() if ci["source_id"] == source_id]
            if not found:
                return Response(404, NOT_FOUND)
            contact_inbox = found[0]
            if contact_id is not None and int(contact_id) != contact_inbox["contact_id"]:
                return Response(422, {"error": "source_id should be unique"})
        elif contact_id is not None and body.get("inbox_id") is not None:
            contact = self._contacts.get(int(contact_id))
            if contact is None:
                return Response(404, NOT_FOUND)
            existing = [
                ci for ci in self._contact_inboxes.values() if ci["contact_id"] == contact["id"]
            ]
            contact_inbox = existing[0] if existing else self._new_contact_inbox(contact)
        else:
            return Response(422, {"error": "param is missing or the value is empty: source_id"})
        status = body.get("status") or "open"
        if status not in STATUSES:
            return Response(422, {"error": f"'{status}' is not a valid status"})
        conv = self._new_conversation(
            contact_inbox,
            status=status,
            additional_attributes=body.get("additional_attributes"),
            custom_attributes=body.get("custom_attributes"),
        )
        if isinstance(body.get("message"), dict) and body["message"].get("content"):
            self._new_message(conv, body["message"]["content"], "outgoing", False, "user")
        self._emit(
            "conversation_created",
            {**self._conversation_webhook(conv), "event": "conversation_created"},
        )
        return Response(200, self._conversation_rest(conv))

    def _conversation_or_404(self, conversation_id: str) -> dict | None:
        return self._conversations.get(int(conversation_id))

    def _show_conversation(
        self, request: RecordedRequest, body: dict, conversation_id: str
    ) -> Response:
        conv = self._conversation_or_404(conversation_id)
        return Response(200, self._conversation_rest(conv)) if conv else Response(404, NOT_FOUND)

    def _list_messages(
        self, request: RecordedRequest, body: dict, conversation_id: str
    ) -> Response:
        conv = self._conversation_or_404(conversation_id)
        if conv is None:
            return Response(404, NOT_FOUND)
        params = {k: v[-1] for k, v in parse_qs(request.query).items()}
        messages = self._found_messages(conv, params)
        contact = self._contacts[conv["contact_id"]]
        return Response(
            200,
            {
                "meta": {
                    "labels": conv["labels"],
                    "additional_attributes": conv["additional_attributes"],
                    "contact": self._contact_push(contact),
                    "agent_last_seen_at": None,
                },
                "payload": [self._message_rest(m) for m in messages],
            },
        )

    def _found_messages(self, conv: dict, params: dict[str, str]) -> list[dict]:
        """``MessageFinder#current_messages``: ``after`` and ``before`` → ids in
        ``[after, before)`` (1000 at most); ``before`` → the 20 before it; ``after`` → the
        100 after it; neither → the latest 20. Always oldest first."""
        messages = [m for m in self._messages.values() if m["conversation_id"] == conv["id"]]
        after, before = params.get("after"), params.get("before")
        if after and before:
            return [m for m in messages if int(after) <= m["id"] < int(before)][:1000]
        if before:
            return [m for m in messages if m["id"] < int(before)][-MESSAGES_PAGE:]
        if after:
            return [m for m in messages if m["id"] > int(after)][:MESSAGES_AFTER_PAGE]
        return messages[-MESSAGES_PAGE:]

    def _create_message(
        self, request: RecordedRequest, body: dict, conversation_id: str
    ) -> Response:
        conv = self._conversation_or_404(conversation_id)
        if conv is None:
            return Response(404, NOT_FOUND)
        message_type = body.get("message_type") or "outgoing"
        if message_type not in ("incoming", "outgoing"):
            return Response(422, {"error": f"'{message_type}' is not a valid message_type"})
        private = body.get("private") in (True, "true")
        sender = "contact" if message_type == "incoming" else "user"
        message = self._new_message(
            conv,
            body.get("content"),
            message_type,
            private,
            sender,
            content_type=body.get("content_type"),
            content_attributes=body.get("content_attributes"),
            source_id=body.get("source_id"),
        )
        self._emit(
            "message_created", {**self._message_webhook(message), "event": "message_created"}
        )
        if message_type == "incoming" and conv["status"] in ("resolved", "snoozed"):
            self._change_status(conv, "open")
        return Response(200, self._message_rest(message))

    def _change_status(self, conv: dict, status: str) -> None:
        previous = conv["status"]
        self._set_status(conv, status)
        if previous != status:
            payload = {
                **self._conversation_webhook(conv),
                "event": "conversation_status_changed",
                "changed_attributes": [
                    {"status": {"previous_value": previous, "current_value": status}}
                ],
            }
            self._emit("conversation_status_changed", payload)

    def _toggle_status(
        self, request: RecordedRequest, body: dict, conversation_id: str
    ) -> Response:
        conv = self._conversation_or_404(conversation_id)
        if conv is None:
            return Response(404, NOT_FOUND)
        status = body.get("status") or ("resolved" if conv["status"] == "open" else "open")
        if status not in STATUSES:
            return Response(422, {"error": f"'{status}' is not a valid status"})
        conv["snoozed_until"] = body.get("snoozed_until") if status == "snoozed" else None
        self._change_status(conv, status)
        return Response(
            200,
            {
                "meta": {},
                "payload": {
                    "success": True,
                    "conversation_id": conv["id"],
                    "current_status": conv["status"],
                    "snoozed_until": conv["snoozed_until"],
                },
            },
        )
