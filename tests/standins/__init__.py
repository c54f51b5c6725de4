"""Real HTTP stand-ins for external peers (Chatwoot, an OpenAI-compatible LLM API)."""

from tests.standins.base import MAX_HANG_SECONDS, RecordedRequest, StandinServer
from tests.standins.chatwoot import (
    ChatwootStandin,
    deliver_webhook,
    make_webhook,
    rails_json,
    sign_webhook,
)
from tests.standins.llm import LLMStandin

__all__ = [
    "MAX_HANG_SECONDS",
    "ChatwootStandin",
    "LLMStandin",
    "RecordedRequest",
    "StandinServer",
    "deliver_webhook",
    "make_webhook",
    "rails_json",
    "sign_webhook",
]
