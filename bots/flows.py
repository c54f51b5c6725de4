"""Pure flow-matching logic: which rule fires for a visitor message (no database access).

Rules are duck-typed (anything with `trigger`, `pattern` and `active`), so this module is
shared by the model validation, the services and the tests.
"""

from __future__ import annotations

import re
import re._constants as sre_constants
import re._parser as sre_parse
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Protocol, TypeVar

import regex
import structlog
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

log = structlog.get_logger(__name__)

# Triggers and actions, spelled as in bots.models (which imports this module lazily).
GREETING, KEYWORD, REGEX, BUTTON = "greeting", "keyword", "regex", "button"

# Visitor text looked at by keyword and regex triggers. A tenant's regex runs on every
# message; capping the input bounds the cost of a badly written pattern.
MAX_MATCH_CHARS = 2000
MAX_QUICK_REPLIES = 10
MAX_BUTTON_CHARS = 80

# Words that make up a bare salutation ("hi there!", "good morning"). A first message
# that is only this gets the greeting; one that asks something also goes on to be answered.
_SALUTATION_WORDS = frozenset(
    (
        *("hi", "hii", "hiii", "hello", "hallo", "helo", "hey", "heya", "hiya", "howdy"),
        *("yo", "sup", "hola", "bonjour", "ciao", "greetings", "good", "morning"),
        *("afternoon", "evening", "day", "there", "all", "team", "folks", "everyone"),
        *("anyone", "guys", "ok", "okay", "thanks", "thank", "you", "cheers"),
        # small talk that asks nothing yet: "hello, how are you?", "hi, are you there?",
        # "hey can you help me", "hi, I have a question"
        *("how", "hows", "are", "r", "u", "doing", "going", "is", "whats"),
        *("can", "could", "help", "me", "i", "need", "have", "a", "quick", "question"),
        *("please", "pls", "someone", "somebody", "anybody", "still", "here"),
    )
)
_EMAIL_CANDIDATE = re.compile(r"[^\s<>()\[\]{},;:\"']+@[^\s<>()\[\]{},;:\"']+")


class RuleLike(Protocol):
    trigger: str
    pattern: str
    active: bool


Rule = TypeVar("Rule", bound=RuleLike)


def keywords(pattern: str) -> list[str]:
    """ "refund, money back" -> ["refund", "money back"] (blank items dropped)."""
    return [" ".join(k.split()) for k in (pattern or "").split(",") if k.strip()]


_APOSTROPHES_RE = re.compile("['\u2019\u2018\u02bc`\u00b4]")
_INNER_HYPHENS_RE = re.compile(r"(?<=\w)[-\u2010\u2011\u2013](?=\w)")


def fold(text: str) -> str:
    """Text as keywords are matched: case-folded, accents and apostrophes dropped. "I
    can’t log in" meets "can't log in", "envío" meets "envio", whichever way a phone
    composed the accent (NFC or NFD)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _APOSTROPHES_RE.sub("", text.casefold())


def _hyphen_forms(folded: str) -> tuple[str, ...]:
    """A hyphen inside a word read as a space ("out-of-stock" holds "stock") and as
    nothing ("e-mail" is "email")."""
    if not _INNER_HYPHENS_RE.search(folded):
        return (folded,)
    return (_INNER_HYPHENS_RE.sub(" ", folded), _INNER_HYPHENS_RE.sub("", folded))


@lru_cache(maxsize=256)
def _text_forms(text: str) -> tuple[str, ...]:
    # One message meets every rule of a bot: folded once, not per rule.
    return _hyphen_forms(fold(text[:MAX_MATCH_CHARS]))


@lru_cache(maxsize=1024)
def _keyword_regexes(keyword: str) -> tuple[re.Pattern[str], ...]:
    # Lookarounds instead of \b so that keywords starting or ending with a symbol
    # ("c++", "#help") still match on word boundaries; inner spaces match any whitespace.
    return tuple(
        re.compile(rf"(?<!\w){body}(?!\w)")
        for form in _hyphen_forms(fold(keyword))
        if (body := r"\s+".join(re.escape(word) for word in form.split()))
    )


def _keyword_matches(keyword: str, text: str) -> bool:
    forms = _text_forms(text)
    return any(regex.search(form) for regex in _keyword_regexes(keyword) for form in forms)


# A tenant's regex runs on every visitor message, in the request. The stdlib `re` cannot
# stop a pattern that backtracks catastrophically (one tenant's "(a|aa)+b" would hold a
# web worker for minutes), so tenant patterns go through `regex`, which takes a time limit;
# a match that runs out of time counts as no match.
REGEX_TIMEOUT_SECONDS = 0.05
# Saving a pattern tries it on long messages of these shapes first.
_SLOW_PROBES = tuple(
    (chunk * (MAX_MATCH_CHARS // len(chunk)))[: MAX_MATCH_CHARS - 1] + "!"
    for chunk in ("a", " ", "ab", "a1 ", "aA-_. ")
)


_POSSESSIVE_REPEAT = getattr(sre_constants, "POSSESSIVE_REPEAT", None)
# `regex` has no time limit on compiling, which nested counted repeats make explode
# ("(?:(?:a{60}){60}){60}" takes seconds, holding the GIL), so a pattern's repeat counts
# are bounded first, on the standard library's parse of it.
MAX_REPEAT_COUNT = 1000
MAX_NESTED_REPEATS = 10_000
# Syntax `re` reads literally but `regex` does not (POSIX classes, fuzzy matching): a
# pattern means the same to the person who tests it in Python and to the engine.
_REGEX_ONLY_SYNTAX = re.compile(r"\[\[:\^?[a-z]+:\]\]|\{\s*[eisd]\s*[<=>]")


def _repeats(items: Iterable, outer: int = 1) -> Iterable[tuple[int, int]]:
    """(count, count × the enclosing repeats' counts) of each repeat of a parsed pattern."""
    for op, av in items:
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, _POSSESSIVE_REPEAT):
            low, high, item = av
            count = max(1, low if high == sre_constants.MAXREPEAT else high)
            yield count, outer * count
            yield from _repeats(item, outer * count)
        else:
            for part in av if isinstance(av, tuple | list) else (av,):
                if isinstance(part, sre_parse.SubPattern):
                    yield from _repeats(part, outer)
                elif isinstance(part, list):  # the alternatives of a BRANCH
                    for branch in part:
                        if isinstance(branch, sre_parse.SubPattern):
                            yield from _repeats(branch, outer)


def _syntax_problem(pattern: str) -> str | None:
    """What makes a tenant pattern unfit before `regex` ever compiles it."""
    if _REGEX_ONLY_SYNTAX.search(pattern):
        return "POSIX classes like [[:digit:]] and fuzzy matching like {e<=1} are not supported."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set" etc.
            parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"This regular expression does not compile: {exc}."
    for count, nested in _repeats(parsed):
        if count > MAX_REPEAT_COUNT or nested > MAX_NESTED_REPEATS:
            return (
                f"This regular expression repeats too much: at most {MAX_REPEAT_COUNT} "
                f"times for one repeat and {MAX_NESTED_REPEATS} for repeats inside repeats."
            )
    return None


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> regex.Pattern[str]:
    """Only for patterns `_syntax_problem` accepted."""
    return regex.compile(pattern, regex.IGNORECASE | regex.V0)


@lru_cache(maxsize=1024)
def _usable(pattern: str) -> bool:
    """Passes the syntax checks, compiles and does not match an empty message (what
    validation refuses first): a rule saved around validation never runs otherwise."""
    if _syntax_problem(pattern):
        return False
    try:
        return not _compiled(pattern).search("")
    except regex.error:
        return False


def _regex_search(pattern: str, text: str) -> bool:
    try:
        return _compiled(pattern).search(text, timeout=REGEX_TIMEOUT_SECONDS) is not None
    except TimeoutError:
        log.warning("flows.regex_timeout", pattern=pattern[:200], text_length=len(text))
        return False


def _too_slow(compiled: regex.Pattern[str]) -> bool:
    for probe in _SLOW_PROBES:
        try:
            compiled.search(probe, timeout=REGEX_TIMEOUT_SECONDS)
        except TimeoutError:
            return True
    return False


def pattern_problem(trigger: str, pattern: str) -> str | None:
    """A clear message when `pattern` does not suit `trigger`, else None."""
    pattern = pattern or ""
    if trigger == KEYWORD and not keywords(pattern):
        return "Enter one or more keywords, separated by commas."
    if trigger == REGEX:
        if not pattern.strip():
            return "Enter a regular expression."
        if problem := _syntax_problem(pattern):
            return problem
        try:
            compiled = _compiled(pattern)
        except regex.error as exc:
            return f"This regular expression does not compile: {exc}."
        if compiled.search(""):
            return "This regular expression matches an empty message, so it would match everything."
        if _too_slow(compiled):
            return (
                "This regular expression takes too long on long messages (it backtracks "
                "a lot): simplify it, e.g. avoid nested repeats like (a+)+ or (a|aa)+."
            )
    if trigger == BUTTON and not pattern.strip():
        return "Enter the button value this rule answers."
    return None


def quick_replies_problem(quick_replies: object) -> str | None:
    """Quick replies must be a short list of {"label": str, "value": str}."""
    if not isinstance(quick_replies, list):
        return 'Quick replies must be a list like [{"label": "Orders", "value": "orders"}].'
    if len(quick_replies) > MAX_QUICK_REPLIES:
        return f"At most {MAX_QUICK_REPLIES} quick replies."
    for number, item in enumerate(quick_replies, start=1):
        if not isinstance(item, dict) or set(item) != {"label", "value"}:
            return f'Quick reply {number} must have exactly "label" and "value".'
        for key in ("label", "value"):
            value = item[key]
            if not isinstance(value, str) or not value.strip():
                return f"Quick reply {number}: {key} must be a non-empty text."
            if len(value) > MAX_BUTTON_CHARS:
                return f"Quick reply {number}: {key} is longer than {MAX_BUTTON_CHARS} characters."
    return None


def rule_matches(rule: RuleLike, text: str, *, first_message: bool) -> bool:
    """Does `rule` fire for the visitor message `text`?"""
    if not rule.active:
        return False
    if rule.trigger == GREETING:
        return first_message
    if rule.trigger == BUTTON:
        return bool(rule.pattern.strip()) and text.strip() == rule.pattern.strip()
    text = text[:MAX_MATCH_CHARS]
    if rule.trigger == KEYWORD:
        return any(_keyword_matches(k, text) for k in keywords(rule.pattern))
    if rule.trigger == REGEX:
        if not _usable(rule.pattern):
            return False  # saved before validation (e.g. through the shell): never crash
        return _regex_search(rule.pattern, text)
    return False


def first_match(
    rules: Iterable[Rule], text: str, *, first_message: bool, skip: Sequence[str] = ()
) -> Rule | None:
    """The first rule (in the given order) that fires, ignoring triggers in `skip`."""
    for rule in rules:
        if rule.trigger not in skip and rule_matches(rule, text, first_message=first_message):
            return rule
    return None


def is_salutation(text: str) -> bool:
    """True for a message that only greets ("Hi there!", "good morning") or is empty."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    return all(word in _SALUTATION_WORDS for word in words)


def find_email(text: str) -> str | None:
    """The first valid email address in `text`, or None."""
    for candidate in _EMAIL_CANDIDATE.findall(text or ""):
        candidate = candidate.strip(".!?")
        # A reachable visitor address has a dotted domain (Django also allows "localhost").
        if len(candidate) > 254 or "." not in candidate.rpartition("@")[2]:
            continue
        try:
            validate_email(candidate)
        except ValidationError:
            continue
        return candidate
    return None
