"""The one typed client for Chatwoot's REST API (all our outbound calls to Chatwoot).

Wire format (Chatwoot 4.x): auth is the `api_access_token` header; REST messages carry
`message_type` as an integer (0 incoming, 1 outgoing, 2 activity, 3 template) and
`created_at` as epoch seconds; errors are `{"error": ...}`, `{"errors": [...]}` or, for
validation, `{"message", "attributes"}`. The profile answer holds the access token itself,
so response bodies are never logged.

Writes retry transient failures (connection errors, timeouts, 429, 5xx) after 1, 2, 4 and
8 × `CHATWOOT_RETRY_BASE_SECONDS`; the last error is raised as `ChatwootError` and the
caller parks the operation in the retry queue. A client made with `backoff=False` (work
running inside someone's request: eager Celery) tries once and raises at once. Health
probes never retry: they measure.

Creating a message or a conversation is not idempotent, and a failure after the request
may have reached Chatwoot is ambiguous: it may have stored it and only the answer was
lost. Before retrying such a failure (a timeout other than connecting, a connection cut
or reset, a 2xx that is not JSON, any 5xx — a 500 from Rails and a 502/503/504 from a
proxy look alike, and a look-up costs one GET) these calls look for what the first
attempt made (by `source_id`, by our identifier) and return it instead of posting again.
Failures where nothing was sent (connection refused or unreachable, a connect or pool
timeout) and a 429 (Rack::Attack refuses before the controller) are retried at once.

Finding what an earlier attempt created: a contact we create carries an `identifier`
(unique per account in Chatwoot), found again exactly with `POST /contacts/filter`
(`/contacts/search?q=` matches substrings: `...:4` would also find `...:40`); a
conversation carries our id in `custom_attributes[IDENTIFIER_ATTRIBUTE]`, found again in
`GET /contacts/{id}/conversations` (the contact's latest 20 in the inboxes the token's
user is a member of); our messages carry a `source_id`, looked for in
`GET /conversations/{id}/messages`, which gives the latest 20 and pages back with
`before=<message id>` (Chatwoot's `MessageFinder`).

One Chatwoot contact is one person with all their conversations: each conversation goes
through its own contact inbox (`POST /contacts/{id}/contact_inboxes`, find-or-create by
`source_id` in Chatwoot's `ContactInboxBuilder`), created with that `source_id`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from django.conf import settings

from core.http import tls_context
from core.text import ascii_digits
from support import metrics

log = structlog.get_logger(__name__)

BACKOFF_STEPS = (1, 2, 4, 8)
IDENTIFIER_ATTRIBUTE = "replybase_id"
MESSAGES_PAGE = 20  # MessageFinder: the latest 20, or the 20 before `before=<id>`
MESSAGES_AFTER_PAGE = 100  # MessageFinder: the 100 after `after=<id>`
MESSAGE_TYPE_NAMES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
USER_AGENT = "ReplyBase-Support/1.0"


class ChatwootError(Exception):
    """A call failed: `status` is None for transport failures (timeout, refused)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    status: int | None
    ms: int
    error: str = ""


@dataclass(frozen=True)
class ContactCreated:
    """A contact, created or found, and its `source_id` in our inbox ("" if it has none);
    `name`, `email` and `email_attribute` (`additional_attributes.email`) as Chatwoot has
    them, to tell whether an update is needed."""

    contact_id: int
    source_id: str
    name: str = ""
    email: str = ""
    email_attribute: str = ""


@dataclass(frozen=True)
class ChatwootMessage:
    id: int
    content: str
    message_type: str  # incoming / outgoing / activity / template
    private: bool
    created_at: datetime | None
    source_id: str | None


def message_type_name(value: Any) -> str:
    """REST gives an integer, webhooks a name; both become the name."""
    if isinstance(value, int) and not isinstance(value, bool):
        return MESSAGE_TYPE_NAMES.get(value, str(value))
    if isinstance(value, str) and ascii_digits(value):
        return MESSAGE_TYPE_NAMES.get(int(value), value)
    return str(value or "")


def error_text(response: httpx.Response) -> str:
    """`HTTP 401: Invalid Access Token` from whichever error shape Chatwoot used."""
    detail = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            detail = body["error"]
        elif isinstance(body.get("errors"), list):
            detail = "; ".join(str(e) for e in body["errors"])
        elif isinstance(body.get("message"), str):
            detail = body["message"]
    elif response.headers.get("content-type", "").startswith("text/html"):
        detail = "not found (HTML page)" if response.status_code == 404 else "HTML error page"
    return f"HTTP {response.status_code}" + (f": {detail[:200]}" if detail else "")


def _transport_error(exc: httpx.HTTPError, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"Connection timeout after {int(timeout * 1000)}ms"
    if isinstance(exc, httpx.ConnectError):
        return "Connection refused or unreachable"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "Connection closed without a response"
    return f"Request failed: {type(exc).__name__}"


# Raised while the request is built, before anything is sent: httpx.InvalidURL, or a
# ValueError for a header value that is not ASCII (a token pasted with a zero-width space)
# or a host name IDNA refuses. Not httpx.HTTPError, so caught on their own.
UNSENDABLE_ERRORS = (httpx.InvalidURL, ValueError)


def _unsendable_error(exc: Exception) -> str:
    if isinstance(exc, UnicodeEncodeError):  # never quote it: the text is the token's
        return "Cannot send the request: the API token holds characters that are not ASCII"
    return f"Cannot send the request: the base URL is not usable ({type(exc).__name__})"


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


# Transport failures raised before any byte of the request left: safe to send again.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class _Found:
    """What an earlier attempt had created, found before a retry (see `_call`)."""

    value: Any


def _given(**fields: Any) -> dict[str, Any]:
    """Only the fields that have a value: a key left out is one Chatwoot leaves as it is."""
    return {key: value for key, value in fields.items() if value}


def _payload_rows(data: Any) -> list[dict]:
    """The records of a Chatwoot list answer (`{"payload": [...]}`): those that are
    objects with an id; anything else in it is skipped."""
    rows = data.get("payload") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, dict) and "id" in row]


def _contact(row: Any, source_id: str) -> ContactCreated:
    """A contact row of Chatwoot's contact partial; TypeError/ValueError when it is none."""
    if not isinstance(row, dict):
        raise TypeError("not a contact")
    attributes = row.get("additional_attributes")
    email_attribute = attributes.get("email") if isinstance(attributes, dict) else None
    return ContactCreated(
        int(row["id"]),
        source_id,
        name=str(row.get("name") or ""),
        email=str(row.get("email") or ""),
        email_attribute=str(email_attribute or ""),
    )


def _epoch(value: Any) -> datetime | None:
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


class ChatwootClient:
    def __init__(
        self,
        *,
        base_url: str,
        account_id: int | None,
        api_token: str,
        timeout: float | None = None,
        retry_base: float | None = None,
        backoff: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account_id = account_id
        self.api_token = api_token
        self.timeout = settings.CHATWOOT_HTTP_TIMEOUT if timeout is None else timeout
        base = settings.CHATWOOT_RETRY_BASE_SECONDS if retry_base is None else retry_base
        self.delays = tuple(step * base for step in BACKOFF_STEPS) if backoff else ()

    @classmethod
    def for_connection(cls, connection, *, backoff: bool = True) -> ChatwootClient:
        return cls(
            base_url=connection.base_url,
            account_id=connection.account_id,
            api_token=connection.api_token,
            backoff=backoff,
        )

    # --- plumbing ----------------------------------------------------------------------

    def _headers(self, *, auth: bool = True) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if auth:
            headers["api_access_token"] = self.api_token
        return headers

    def _account_path(self, path: str) -> str:
        return f"/api/v1/accounts/{self.account_id}{path}"

    def _send(self, method: str, path: str, *, json: dict | None, timeout: float) -> httpx.Response:
        return httpx.request(
            method,
            self.base_url + path,
            json=json,
            headers=self._headers(),
            timeout=timeout,
            follow_redirects=False,
            verify=tls_context(),
        )

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: dict | None = None,
        retry: bool,
        find_before_retry: Callable[[], Any] | None = None,
    ) -> Any:
        """One API call with backoff retries on transient failures; returns parsed JSON.

        With `find_before_retry` (non-idempotent creates), a retry after a failure that
        may have been applied first calls it; what it finds (not None) is returned
        wrapped in `_Found` instead of sending the request again."""
        delays = self.delays if retry else ()
        attempt = 0
        while True:
            try:
                response = self._send(method, path, json=json, timeout=self.timeout)
            except httpx.HTTPError as exc:
                failure = ChatwootError(_transport_error(exc, self.timeout), retryable=True)
                maybe_applied = not isinstance(exc, NOT_SENT_ERRORS)
            else:
                maybe_applied = response.status_code != 429
                if response.status_code < 300:
                    try:
                        data = response.json()
                    except ValueError:
                        failure = ChatwootError(
                            f"HTTP {response.status_code}: the answer is not JSON",
                            status=response.status_code,
                            retryable=True,
                        )
                    else:
                        metrics.OUTBOUND.labels(operation, "ok").inc()
                        return data
                else:
                    failure = ChatwootError(
                        error_text(response),
                        status=response.status_code,
                        retryable=_retryable_status(response.status_code),
                    )
            if not failure.retryable or attempt >= len(delays):
                metrics.OUTBOUND.labels(operation, "failed").inc()
                log.warning(
                    "chatwoot.call_failed",
                    operation=operation,
                    status=failure.status,
                    error=failure.message,
                    attempts=attempt + 1,
                )
                raise failure
            metrics.OUTBOUND_RETRIES.labels(operation).inc()
            time.sleep(delays[attempt])
            attempt += 1
            if find_before_retry is not None and maybe_applied:
                found = find_before_retry()  # a failing look-up fails the call: no blind post
                if found is not None:
                    metrics.OUTBOUND.labels(operation, "ok").inc()
                    log.info(
                        "chatwoot.found_before_retry",
                        operation=operation,
                        status=failure.status,
                        error=failure.message,
                        attempts=attempt,
                    )
                    return _Found(found)

    # --- health probes (no retries) ----------------------------------------------------

    def _probe(self, path: str, *, auth: bool) -> tuple[ProbeResult, httpx.Response | None]:
        timeout = settings.CHATWOOT_HEALTH_TIMEOUT_SECONDS
        started = time.perf_counter()
        try:
            response = httpx.get(
                self.base_url + path,
                headers=self._headers(auth=auth),
                timeout=timeout,
                follow_redirects=False,
                verify=tls_context(),
            )
        except httpx.HTTPError as exc:
            ms = int((time.perf_counter() - started) * 1000)
            return ProbeResult(False, None, ms, _transport_error(exc, timeout)), None
        except UNSENDABLE_ERRORS as exc:  # a probe never raises: other connections go on
            ms = int((time.perf_counter() - started) * 1000)
            return ProbeResult(False, None, ms, _unsendable_error(exc)), None
        ms = int((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            return ProbeResult(False, response.status_code, ms, error_text(response)), response
        return ProbeResult(True, 200, ms), response

    def platform_health(self, path: str = "/health") -> ProbeResult:
        """`GET <health path>` without auth; healthy is HTTP 200."""
        if not path.startswith("/"):
            path = "/" + path
        return self._probe(path, auth=False)[0]

    def profile(self) -> ProbeResult:
        """`GET /api/v1/profile` with the token; healthy is 200 and access to the account."""
        result, response = self._probe("/api/v1/profile", auth=True)
        if not result.ok or response is None:
            return result
        try:
            profile = response.json()  # holds the access token: never logged
        except ValueError:
            return ProbeResult(False, 200, result.ms, "HTTP 200: the answer is not JSON")
        if not isinstance(profile, dict) or "id" not in profile:
            return ProbeResult(False, 200, result.ms, "HTTP 200: not a Chatwoot profile")
        accounts = profile.get("accounts")
        if self.account_id and isinstance(accounts, list):
            ids = {a.get("id") for a in accounts if isinstance(a, dict)}
            if ids and self.account_id not in ids:
                return ProbeResult(
                    False, 200, result.ms, f"The token has no access to account {self.account_id}"
                )
        return result

    # --- API ---------------------------------------------------------------------------

    def create_contact(
        self,
        *,
        name: str,
        inbox_id: int,
        email: str = "",
        source_id: str = "",
        identifier: str = "",
        additional_attributes: dict | None = None,
    ) -> ContactCreated:
        body = {
            "name": name,
            "inbox_id": inbox_id,
            **_given(
                email=email,
                identifier=identifier,
                source_id=source_id,
                additional_attributes=additional_attributes,
            ),
        }
        data = self._call(
            "create_contact", "POST", self._account_path("/contacts"), json=body, retry=True
        )
        payload = data.get("payload") if isinstance(data, dict) else None
        try:
            contact = payload["contact"]
            contact_inbox = payload.get("contact_inbox") or {}
            return _contact(contact, str(contact_inbox.get("source_id") or source_id))
        except (KeyError, TypeError, ValueError) as exc:
            raise ChatwootError("Unexpected answer to creating a contact") from exc

    def find_contact(self, *, identifier: str, inbox_id: int | None) -> ContactCreated | None:
        """The contact whose `identifier` is exactly this one (Chatwoot compares it
        case-insensitively), with its source_id in `inbox_id`; None when there is none."""
        body = {
            "payload": [
                {
                    "attribute_key": "identifier",
                    "filter_operator": "equal_to",
                    "values": [identifier],
                    "query_operator": None,
                }
            ]
        }
        path = self._account_path("/contacts/filter")
        data = self._call("find_contact", "POST", path, json=body, retry=True)
        for row in _payload_rows(data):
            if str(row.get("identifier") or "").lower() != identifier.lower():
                continue
            source_id = ""
            for contact_inbox in row.get("contact_inboxes") or []:
                inbox = (contact_inbox or {}).get("inbox") or {}
                if inbox_id is not None and inbox.get("id") == inbox_id:
                    source_id = str(contact_inbox.get("source_id") or "")
                    break
            try:
                return _contact(row, source_id)
            except (TypeError, ValueError) as exc:
                raise ChatwootError("Unexpected answer to filtering contacts") from exc
        return None

    def update_contact(
        self,
        *,
        contact_id: int,
        name: str = "",
        email: str = "",
        additional_attributes: dict | None = None,
    ) -> None:
        """`PUT /contacts/{id}` with only what is given (Chatwoot merges
        `additional_attributes` into the stored ones); an email another contact has is a
        422 "Email has already been taken"."""
        body = _given(name=name, email=email, additional_attributes=additional_attributes)
        path = self._account_path(f"/contacts/{int(contact_id)}")
        self._call("update_contact", "PUT", path, json=body, retry=True)

    def create_contact_inbox(self, *, contact_id: int, inbox_id: int, source_id: str = "") -> str:
        """The contact's link to `inbox_id` under `source_id` (Chatwoot finds it when it
        exists, else creates it; without a source_id it makes a UUID); returns the
        source_id to create a conversation with."""
        body = {"inbox_id": inbox_id, **_given(source_id=source_id)}
        path = self._account_path(f"/contacts/{int(contact_id)}/contact_inboxes")
        data = self._call("create_contact_inbox", "POST", path, json=body, retry=True)
        found = data.get("source_id") if isinstance(data, dict) else None
        if not found:
            raise ChatwootError("Unexpected answer to creating a contact inbox")
        return str(found)

    def find_conversation(
        self, *, contact_id: int, inbox_id: int | None, identifier: str
    ) -> int | None:
        """The id of the contact's conversation in `inbox_id` that carries our `identifier`
        in `custom_attributes[IDENTIFIER_ATTRIBUTE]`; None when there is none."""
        path = self._account_path(f"/contacts/{int(contact_id)}/conversations")
        data = self._call("find_conversation", "GET", path, retry=True)
        for row in _payload_rows(data):
            attributes = row.get("custom_attributes") or {}
            if not isinstance(attributes, dict):
                continue
            if attributes.get(IDENTIFIER_ATTRIBUTE) != identifier:
                continue
            if inbox_id is not None and row.get("inbox_id") != inbox_id:
                continue
            try:
                return int(row["id"])
            except (TypeError, ValueError) as exc:
                raise ChatwootError("Unexpected answer to listing conversations") from exc
        return None

    def create_conversation(
        self,
        *,
        source_id: str,
        inbox_id: int,
        contact_id: int,
        additional_attributes: dict | None = None,
        custom_attributes: dict | None = None,
    ) -> int:
        """A new conversation of the contact in `inbox_id`: through its contact inbox
        `source_id`, or (without one) Chatwoot picks or makes the contact's inbox link."""
        body: dict[str, Any] = {
            "inbox_id": inbox_id,
            "contact_id": contact_id,
            "status": "open",
            "additional_attributes": additional_attributes or {},
            "custom_attributes": custom_attributes or {},
        }
        if source_id:
            body["source_id"] = source_id
        identifier = (custom_attributes or {}).get(IDENTIFIER_ATTRIBUTE)
        data = self._call(
            "create_conversation",
            "POST",
            self._account_path("/conversations"),
            json=body,
            retry=True,
            find_before_retry=(
                (
                    lambda: self.find_conversation(
                        contact_id=contact_id, inbox_id=inbox_id, identifier=identifier
                    )
                )
                if identifier
                else None
            ),
        )
        if isinstance(data, _Found):
            return int(data.value)
        try:
            return int(data["id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ChatwootError("Unexpected answer to creating a conversation") from exc

    def create_message(
        self,
        *,
        conversation_id: int,
        content: str,
        message_type: str = "outgoing",
        private: bool = False,
        source_id: str = "",
        operation: str = "create_message",
    ) -> ChatwootMessage:
        body: dict[str, Any] = {
            "content": content,
            "message_type": message_type,
            "private": private,
            "content_type": "text",
        }
        if source_id:
            body["source_id"] = source_id
        path = self._account_path(f"/conversations/{conversation_id}/messages")
        data = self._call(
            operation,
            "POST",
            path,
            json=body,
            retry=True,
            find_before_retry=(
                (
                    lambda: self.find_message_by_source_id(
                        conversation_id=conversation_id, source_id=source_id
                    )
                )
                if source_id
                else None
            ),
        )
        if isinstance(data, _Found):
            return data.value
        message = self._message(data)
        if message is None:
            raise ChatwootError("Unexpected answer to creating a message")
        return message

    def _message_page(self, conversation_id: int, query: str) -> list[ChatwootMessage]:
        path = self._account_path(f"/conversations/{conversation_id}/messages") + query
        data = self._call("list_messages", "GET", path, retry=True)
        return [self._message(row) for row in _payload_rows(data)]

    def _message_pages_back(self, conversation_id: int) -> Iterator[list[ChatwootMessage]]:
        """The conversation's messages a page at a time, newest page first: Chatwoot's
        `MessageFinder` gives the latest 20, and `before=<oldest id seen>` the 20 before."""
        before: int | None = None
        while True:
            query = "" if before is None else f"?before={before}"
            page = self._message_page(conversation_id, query)
            if page:
                yield page
            oldest = min((m.id for m in page), default=None)
            if len(page) < MESSAGES_PAGE or oldest is None or (before and oldest >= before):
                return
            before = oldest

    def list_messages(
        self, *, conversation_id: int, after: int | None = None
    ) -> list[ChatwootMessage]:
        """Every message of the conversation (after the id `after`), oldest first."""
        if after is None:
            pages = list(self._message_pages_back(conversation_id))
            return [m for page in reversed(pages) for m in page]
        messages: list[ChatwootMessage] = []
        while True:  # `after=<id>` gives the next 100, oldest first
            page = self._message_page(conversation_id, f"?after={int(after)}")
            messages.extend(page)
            newest = max((m.id for m in page), default=after)
            if len(page) < MESSAGES_AFTER_PAGE or newest <= after:
                return messages
            after = newest

    def find_messages_by_source_id(
        self, *, conversation_id: int, source_ids: Iterable[str]
    ) -> dict[str, ChatwootMessage]:
        """Those of our earlier messages (by `source_id`) that the conversation has, paging
        back only until every one is found (or the conversation's first message)."""
        wanted = set(source_ids)
        found: dict[str, ChatwootMessage] = {}
        if not wanted:
            return found
        for page in self._message_pages_back(conversation_id):
            for message in page:
                if message.source_id in wanted:
                    found.setdefault(message.source_id, message)
            if len(found) == len(wanted):
                break
        return found

    def find_message_by_source_id(
        self, *, conversation_id: int, source_id: str
    ) -> ChatwootMessage | None:
        """Our own earlier message (we tag every message we post with a source_id)."""
        found = self.find_messages_by_source_id(
            conversation_id=conversation_id, source_ids=[source_id]
        )
        return found.get(source_id)

    def toggle_status(self, *, conversation_id: int, status: str) -> str:
        path = self._account_path(f"/conversations/{conversation_id}/toggle_status")
        data = self._call("toggle_status", "POST", path, json={"status": status}, retry=True)
        try:
            return str(data["payload"]["current_status"])
        except (KeyError, TypeError) as exc:
            raise ChatwootError("Unexpected answer to changing the status") from exc

    @staticmethod
    def _message(row: Any) -> ChatwootMessage | None:
        if not isinstance(row, dict) or "id" not in row:
            return None
        return ChatwootMessage(
            id=int(row["id"]),
            content=row.get("content") or "",
            message_type=message_type_name(row.get("message_type")),
            private=bool(row.get("private")),
            created_at=_epoch(row.get("created_at")),
            source_id=row.get("source_id"),
        )
