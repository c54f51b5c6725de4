"""An OpenAI-compatible chat-completions peer.

Wire format as the OpenAI API speaks it: ``Authorization: Bearer <key>``; errors are
``{"error": {"message", "type", "param", "code"}}`` (401 ``invalid_api_key``, 400
``missing_required_parameter``/``invalid_value``, 429 ``rate_limit_exceeded``, 5xx
``server_error``); a completion is ``{"id": "chatcmpl-…", "object": "chat.completion",
"created", "model", "choices": [{"index", "message": {"role", "content", "refusal"},
"logprobs", "finish_reason"}], "usage": {…}}`` with ``x-request-id`` and
``openai-processing-ms`` headers.

Replies are deterministic: ``reply_text`` when set; when it is None, the first sentence
following the word "Context" in the last system/developer/user message containing it
(so a test can see which retrieved articles reached the model), else ``fallback_text``.
``max_tokens`` (one token = one word here) truncates the reply with
``finish_reason: "length"``.
"""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

from tests.standins.base import RecordedRequest, Response, StandinServer

ROLES = ("system", "developer", "user", "assistant", "tool", "function")

_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "invalid_request_error", None),
    404: ("Not found.", "invalid_request_error", None),
    429: (
        "Rate limit reached for requests. Please try again in 1s.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "server_error", None),
    503: (
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
    ),
    504: ("Gateway timeout.", "server_error", None),
}


def _error(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _invalid(message: str, param: str | None = None, code: str | None = None) -> Response:
    return Response(400, _error(message, "invalid_request_error", param, code))


def _text_of(content: Any) -> str:
    """``content`` is a string or a list of parts (``{"type": "text", "text": ...}``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _first_sentence(text: str) -> str:
    text = text.strip()
    match = re.match(r"(.+?[.!?])(?=\s|$)", text, re.DOTALL)
    sentence = match.group(1) if match else text.splitlines()[0] if text else ""
    return " ".join(sentence.split())


class LLMStandin(StandinServer):
    name = "llm-standin"

    def __init__(
        self,
        *,
        api_key: str = "sk-standin-0123456789",
        reply_text: str | None = "Hello! This is the stand-in model.",
        fallback_text: str = "I could not find that in the provided context.",
        models: tuple[str, ...] = ("gpt-4o-mini",),
        reject_unknown_models: bool = False,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.reply_text = reply_text
        self.fallback_text = fallback_text
        self.models = models
        self.reject_unknown_models = reject_unknown_models
        self._ids = itertools.count(1)
        for prefix in ("/v1", ""):
            self.add_route("POST", prefix + "/chat/completions", self._chat_completions)
            self.add_route("GET", prefix + "/models", self._models)

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url``."""
        return self.url + "/v1"

    def error_body(self, status: int, message: str | None = None) -> dict:
        default, type_, code = _ERRORS.get(status, ("Error.", "server_error", None))
        return _error(message or default, type_, None, code)

    def not_found(self, request: RecordedRequest) -> Response:
        return Response(
            404,
            _error(f"Invalid URL ({request.method} {request.path})", "invalid_request_error"),
        )

    def _unauthorized(self, request: RecordedRequest) -> Response | None:
        auth = request.headers.get("authorization", "")
        if not auth:
            return Response(
                401,
                _error(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    "invalid_request_error",
                ),
            )
        scheme, _, key = auth.partition(" ")
        if scheme.lower() != "bearer" or key.strip() != self.api_key:
            shown = key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 7 else key
            return Response(
                401,
                _error(
                    f"Incorrect API key provided: {shown}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    code="invalid_api_key",
                ),
            )
        return None

    def _headers(self, started: float) -> dict[str, str]:
        return {
            "x-request-id": f"req_standin{next(self._ids):08d}",
            "openai-processing-ms": str(int((time.monotonic() - started) * 1000)),
            "openai-version": "2020-10-01",
        }

    def _models(self, request: RecordedRequest) -> Response:
        if refused := self._unauthorized(request):
            return refused
        data = [
            {"id": m, "object": "model", "created": 1686935002, "owned_by": "system"}
            for m in self.models
        ]
        return Response(200, {"object": "list", "data": data}, self._headers(request.time))

    def _validate(self, body: Any) -> Response | None:
        if not isinstance(body, dict):
            return _invalid(
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON.)"
            )
        if not body.get("model"):
            return _invalid("you must provide a model parameter")
        if self.reject_unknown_models and body["model"] not in self.models:
            return Response(
                404,
                _error(
                    f"The model `{body['model']}` does not exist or you do not have access to it.",
                    "invalid_request_error",
                    code="model_not_found",
                ),
            )
        messages = body.get("messages")
        if messages is None:
            return _invalid(
                "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
            )
        if not isinstance(messages, list) or not messages:
            return _invalid(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                "messages",
                "empty_array",
            )
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role is None:
                param = f"messages[{i}].role"
                return _invalid(
                    f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
                )
            if role not in ROLES:
                return _invalid(
                    f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                    "'user', 'function', 'tool', and 'developer'.",
                    f"messages[{i}].role",
                    "invalid_value",
                )
        temperature = body.get("temperature")
        if temperature is not None:
            if isinstance(temperature, bool) or not isinstance(temperature, int | float):
                return _invalid(
                    "Invalid type for 'temperature': expected a decimal, but got "
                    f"{type(temperature).__name__} instead.",
                    "temperature",
                    "invalid_type",
                )
            if not 0 <= temperature <= 2:
                side, bound, code = (
                    ("above maximum", "<= 2", "decimal_above_max_value")
                    if temperature > 2
                    else ("below minimum", ">= 0", "decimal_below_min_value")
                )
                return _invalid(
                    f"Invalid 'temperature': decimal {side} value. Expected a value {bound}, "
                    f"but got {temperature} instead.",
                    "temperature",
                    code,
                )
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            return _invalid(
                "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, "
                f"but got {max_tokens} instead.",
                "max_tokens",
                "integer_below_min_value",
            )
        return None

    def reply_for(self, messages: list[dict]) -> str:
        """The deterministic reply to ``messages`` (see the module docstring)."""
        if self.reply_text is not None:
            return self.reply_text
        for message in reversed(messages):
            if message.get("role") not in ("system", "developer", "user"):
                continue
            text = _text_of(message.get("content"))
            if "Context" in text:
                after = text.split("Context", 1)[1].lstrip(" \t\r\n:-—")
                return _first_sentence(after) or self.fallback_text
        return self.fallback_text

    def _chat_completions(self, request: RecordedRequest) -> Response:
        if refused := self._unauthorized(request):
            return refused
        body = request.json
        if invalid := self._validate(body):
            return invalid
        words = self.reply_for(body["messages"]).split()
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        finish_reason = "stop"
        if max_tokens is not None and len(words) > max_tokens:
            words, finish_reason = words[:max_tokens], "length"
        prompt_tokens = sum(len(_text_of(m.get("content")).split()) for m in body["messages"])
        completion = {
            "id": f"chatcmpl-standin{next(self._ids):08d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(words), "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(words),
                "total_tokens": prompt_tokens + len(words),
            },
            "system_fingerprint": "fp_standin",
        }
        return Response(200, completion, self._headers(request.time))
