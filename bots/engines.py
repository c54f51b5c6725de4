"""Reply engines: the built-in knowledge-base engine and an OpenAI-compatible HTTP engine.

An engine is built for one bot by `engine_for_bot` (which does every database read, in
the caller's thread) and then answers with `answer(question)` without touching the
database, so the caller can run it in a worker thread under a hard deadline.

Engines report `answered` or `fallback` (not confident / no answer) and raise
`EngineError` / `EngineTimeout` on failure; the caller turns everything that is not an
answer into the bot's fallback copy (see `fallback_reply`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

import httpx

from bots import metrics
from bots.models import Bot, Engine
from bots.retrieval import KnowledgeIndex
from bots.selectors import KnowledgeSignature, knowledge_docs, knowledge_signature
from core.http import tls_context

Outcome = Literal["answered", "fallback", "handoff", "timeout", "error"]

# The offer shown under every fallback; clicking it sends this text, which
# `bots.retrieval.is_handoff_request` recognises, so the conversation is handed off.
HANDOFF_OFFER: list[dict[str, str]] = [{"label": "Talk to a person", "value": "Talk to a person"}]

DEFAULT_LLM_BASE_URL = "https://api.openai.com/v1"
DEFAULT_LLM_MODEL = "gpt-4o-mini"
CONTEXT_ARTICLES = 3
CONTEXT_BODY_CHARS = 4000
# What the model is told to say when the context does not hold the answer.
NO_ANSWER = "NO_ANSWER"
# An answer is a chat message: a server that ignores max_tokens does not flood the
# transcript (the body read is capped, the text cut at a sentence).
MAX_LLM_BODY_BYTES = 1_000_000
MAX_LLM_REPLY_CHARS = 4000
MAX_CACHED_INDEXES = 500


@dataclass(frozen=True)
class EngineReply:
    text: str
    confidence: float | None
    article_ids: list = field(default_factory=list)
    article_titles: list[str] = field(default_factory=list)
    outcome: Outcome = "answered"
    quick_replies: list[dict[str, str]] = field(default_factory=list)
    latency_ms: int = 0


class EngineError(Exception):
    """The engine failed (HTTP error, bad response, crash): the visitor gets the fallback."""


class EngineTimeout(EngineError):
    """The engine did not answer within the bot's `ai_timeout_seconds`."""


class ReplyEngine(Protocol):
    name: str

    def answer(self, question: str) -> EngineReply: ...


# --- knowledge index cache -------------------------------------------------------------

_index_cache: OrderedDict[int, tuple[KnowledgeSignature, KnowledgeIndex]] = OrderedDict()
_index_lock = threading.Lock()


def knowledge_index_for_tenant(*, tenant_id: int) -> KnowledgeIndex:
    """The tenant's retrieval index over its published articles, rebuilt only on change.

    Costs one aggregate query per call; the index lives in this process, keyed by
    (tenant id, article count, newest updated_at).
    """
    signature = knowledge_signature(tenant_id=tenant_id)
    with _index_lock:
        cached = _index_cache.get(tenant_id)
        if cached is not None and cached[0] == signature:
            _index_cache.move_to_end(tenant_id)
            return cached[1]
    index = KnowledgeIndex(knowledge_docs(tenant_id=tenant_id))
    metrics.KNOWLEDGE_INDEX_BUILDS.inc()
    with _index_lock:
        _index_cache[tenant_id] = (signature, index)
        _index_cache.move_to_end(tenant_id)
        while len(_index_cache) > MAX_CACHED_INDEXES:
            _index_cache.popitem(last=False)
    return index


def knowledge_index_cache_clear() -> None:
    with _index_lock:
        _index_cache.clear()


# --- engines ---------------------------------------------------------------------------


class KnowledgeEngine:
    """Answers with the best passage of the best matching articles (offline, no key)."""

    name = Engine.KNOWLEDGE.value

    def __init__(self, *, index: KnowledgeIndex, threshold: float | None) -> None:
        self.index = index
        self.threshold = threshold

    def answer(self, question: str) -> EngineReply:
        found = self.index.answer(question, threshold=self.threshold)
        return EngineReply(
            text=found.text,
            confidence=found.confidence,
            article_ids=list(found.article_ids),
            article_titles=list(found.article_titles),
            outcome="answered" if found.answered and found.text else "fallback",
        )


class OpenAIEngine:
    """Chat completions with the best matching articles as context.

    `confidence` is the retrieval confidence of the best article; whether the context
    holds the answer is the model's call (it answers NO_ANSWER otherwise). A bot with a
    confidence threshold gets the fallback below it, and the model is not asked.
    Errors never quote the request: httpx's may hold the Authorization header.
    """

    name = Engine.OPENAI.value

    def __init__(
        self,
        *,
        index: KnowledgeIndex,
        base_url: str,
        model: str,
        api_key: str,
        timeout: float,
        bot_name: str,
        threshold: float | None = None,
    ) -> None:
        self.index = index
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        # A key read from a file or a secret often ends in a newline: not part of it.
        self.api_key = api_key.strip()
        self.timeout = timeout
        self.bot_name = bot_name
        self.threshold = threshold

    def _redacted(self, text: str) -> str:
        return text.replace(self.api_key, "[api key]") if self.api_key else text

    def messages(self, question: str, articles: list) -> list[dict[str, str]]:
        instructions = (
            f"You are {self.bot_name}, a friendly customer-support assistant chatting with a "
            "website visitor. Answer briefly and only from the context below. If the context "
            f"does not contain the answer, reply with exactly {NO_ANSWER}."
        )
        context = "Context:\n\n" + (
            "\n\n".join(f"## {doc.title}\n{doc.body[:CONTEXT_BODY_CHARS]}" for doc in articles)
            or "(no matching articles)"
        )
        return [
            {"role": "system", "content": instructions},
            {"role": "system", "content": context},
            {"role": "user", "content": question},
        ]

    def answer(self, question: str) -> EngineReply:
        articles = [doc for doc, _score in self.index.search(question, k=CONTEXT_ARTICLES)]
        confidence = self.index.answer(question, threshold=0.0).confidence
        sources = {
            "confidence": confidence,
            "article_ids": [doc.id for doc in articles],
            "article_titles": [doc.title for doc in articles],
        }
        if self.threshold is not None and (confidence or 0.0) < self.threshold:
            return EngineReply(text="", outcome="fallback", **sources)
        text = self._complete(question, articles)
        answered = bool(text) and NO_ANSWER not in text
        return EngineReply(
            text=_cut(text, MAX_LLM_REPLY_CHARS) if answered else "",
            outcome="answered" if answered else "fallback",
            **sources,
        )

    def _complete(self, question: str, articles: list) -> str:
        """The model's answer text ('' for none)."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        payload = {
            "model": self.model,
            "messages": self.messages(question, articles),
            "temperature": 0.2,
            "max_tokens": 400,
        }
        # httpx's timeouts are per read: a server dripping its answer never trips them.
        # The whole answer is due by the deadline (checked on each chunk, so the thread
        # lets go at most one read timeout after it).
        deadline = time.monotonic() + self.timeout
        try:
            with httpx.stream(
                "POST",
                self.url,
                json=payload,
                headers=headers,
                timeout=self.timeout,
                verify=tls_context(),
            ) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_LLM_BODY_BYTES:
                        raise EngineError(f"LLM answer is over {MAX_LLM_BODY_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise EngineTimeout(f"LLM did not answer in {self.timeout:g} s")
        except httpx.TimeoutException:
            raise EngineTimeout(f"LLM did not answer in {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            # Not `from exc`: the chain would carry the original message into the logs.
            raise EngineError(
                f"LLM request failed: {type(exc).__name__}: {self._redacted(str(exc))}"
            ) from None
        if response.status_code != 200:
            excerpt = body[:300].decode("utf-8", errors="replace")
            raise EngineError(f"LLM answered {response.status_code}: {self._redacted(excerpt)}")
        try:
            text = json.loads(body)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
            raise EngineError(f"LLM response is not a chat completion: {exc!r}") from None
        return text.strip() if isinstance(text, str) else ""


def engine_for_bot(bot: Bot) -> ReplyEngine:
    """The bot's engine, ready to answer (all database reads happen here)."""
    index = knowledge_index_for_tenant(tenant_id=bot.tenant_id)
    if bot.engine == Engine.OPENAI:
        return OpenAIEngine(
            index=index,
            base_url=bot.llm_base_url or DEFAULT_LLM_BASE_URL,
            model=bot.llm_model or DEFAULT_LLM_MODEL,
            api_key=bot.llm_api_key or os.environ.get("OPENAI_API_KEY", ""),
            timeout=float(bot.ai_timeout_seconds),
            bot_name=bot.name,
            threshold=bot.confidence_threshold,
        )
    return KnowledgeEngine(index=index, threshold=bot.confidence_threshold)


def _cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters ending at a sentence (or word) and '…'."""
    if len(text) <= limit:
        return text
    window = text[:limit]  # a sentence's end may be its last character but one
    end = max(window.rfind(". "), window.rfind("! "), window.rfind("? "), window.rfind("\n"))
    if end < limit // 2:
        end = window.rfind(" ")
    head = text[: end + 1] if end > 0 else text[: limit - 1]
    return head.rstrip() + "…"


# --- running an engine -----------------------------------------------------------------

T = TypeVar("T")


def call_with_deadline(fn: Callable[[], T], *, seconds: float) -> T:
    """Run `fn` in a daemon thread and wait at most `seconds` for it.

    A hung engine is abandoned (it finishes or times out on its own in the background),
    so the caller always gets control back on time, also in eager Celery and in `ask`.
    """
    result: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="reply-engine", daemon=True).start()
    if not done.wait(seconds):
        raise EngineTimeout(f"no answer within {seconds:g} s")
    if failure:
        raise failure[0]
    return result[0]


def fallback_reply(bot: Bot, *, outcome: Outcome, confidence: float | None = None) -> EngineReply:
    """The bot's safe fallback copy with a handoff offer."""
    return EngineReply(
        text=bot.fallback_text,
        confidence=confidence,
        outcome=outcome,
        quick_replies=list(HANDOFF_OFFER),
    )
