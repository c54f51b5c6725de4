"""A test-side widget: drives the public API the way the real widget does."""

import json
import uuid

from django.test import Client, TestCase

API = "/api/webchat/v1/"


class WidgetClient:
    def __init__(
        self, client: Client, site_key: str, origin: str = "https://shop.example.com"
    ) -> None:
        self.client = client
        self.site_key = site_key
        self.origin = origin
        self.token = ""
        self.visitor_id = ""
        self.conversation_id = None

    def _headers(
        self, auth: bool = True, origin: str | None = None, token: str | None = None
    ) -> dict:
        headers = {}
        chosen_origin = self.origin if origin is None else origin
        if chosen_origin:
            headers["HTTP_ORIGIN"] = chosen_origin
        chosen_token = self.token if token is None else token
        if auth and chosen_token:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {chosen_token}"
        return headers

    def config(self, *, origin: str | None = None, site_key: str | None = None):
        return self.client.get(
            API + "config", {"site_key": site_key or self.site_key}, **self._headers(False, origin)
        )

    def post(self, path: str, body: dict, **header_kwargs):
        # Tests run inside a transaction that never commits: run on_commit work (the AI
        # reply task) when the request ends, as a real commit would.
        with TestCase.captureOnCommitCallbacks(execute=True):
            return self.client.post(
                API + path,
                data=json.dumps(body),
                content_type="application/json",
                **self._headers(**header_kwargs),
            )

    def init(self, *, challenge: str | None = None, origin: str | None = None, **fields):
        if challenge is None:
            config = self.config(origin=origin)
            assert config.status_code == 200, config.content
            challenge = config.json()["challenge"]
        body = {"site_key": self.site_key, "challenge": challenge, **fields}
        response = self.post("init", body, auth=False, origin=origin)
        if response.status_code == 200:
            data = response.json()
            self.token = data["session_token"]
            self.visitor_id = data["visitor_id"]
            self.conversation_id = data["conversation_id"]
        return response

    def send(self, text: str, client_message_id: str | None = None, **header_kwargs):
        body = {"text": text, "client_message_id": client_message_id or uuid.uuid4().hex}
        return self.post("messages", body, **header_kwargs)

    def poll(self, after: int = 0, **header_kwargs):
        return self.client.get(API + "messages", {"after": after}, **self._headers(**header_kwargs))

    def events(self, events: list, *, with_site_key: bool = False, **header_kwargs):
        body = {"events": events}
        if with_site_key:
            body["site_key"] = self.site_key
        return self.post("events", body, **header_kwargs)
