"""Pure matching rules (bots.flows) and FlowRule validation."""

from dataclasses import dataclass

import pytest
from django.core.exceptions import ValidationError

from bots import flows
from bots.models import FlowAction, FlowRule, FlowTrigger
from tests.factories import BotFactory
from tests.factories.bots import FlowRuleFactory


@dataclass
class R:
    trigger: str
    pattern: str = ""
    active: bool = True


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("refund", "I want a REFUND please", True),
        ("refund", "Refund?", True),
        ("refund", "refunds are slow", False),  # whole words only
        ("refund", "nonrefundable", False),
        ("ship", "shipping costs", False),
        ("money back, refund", "can I get my Money   Back", True),  # phrases, any spacing/case
        ("c++", "do you teach C++?", True),  # symbols at the edge still need a boundary
        ("c++", "abc++", False),
        ("pricing, , ", "what is your pricing", True),  # blank items ignored
        ("can't log in", "I can\u2019t log in", True),  # a phone's curly apostrophe
        ("cant log in", "I can't log in!", True),
        ("envío", "cuánto cuesta el envio", True),  # accents either way
        ("envio", "el env\u00edo", True),
        ("café", "un cafe\u0301 por favor", True),  # NFC keyword, NFD text
        ("e-mail", "send me an email", True),
        ("email", "my e-mail is wrong", True),
        ("STRASSE", "welche straße?", True),  # casefold: ß is ss
        ("stock", "it's out-of-stock again", True),  # a hyphen is also a space
        ("password", "the password-reset link", True),
        ("order", "can I pre-order it", True),
        ("covid", "COVID-19 delays?", True),
        ("out of stock", "out-of-stock", True),
        ("'", "it's here", False),  # a keyword that folds to nothing never fires
    ],
)
def test_keyword_matches_whole_words_any_case(pattern, text, expected):
    assert flows.rule_matches(R("keyword", pattern), text, first_message=False) is expected


def test_regex_matches_anywhere_any_case():
    rule = R("regex", r"order\s*#?\d{5}")
    assert flows.rule_matches(rule, "Where is ORDER #12345?", first_message=False)
    assert not flows.rule_matches(rule, "where is my order", first_message=False)


def test_broken_regex_saved_anyway_never_matches_or_crashes():
    assert not flows.rule_matches(R("regex", "(unclosed"), "(unclosed", first_message=False)


def test_button_matches_the_exact_value_only():
    rule = R("button", "plan_pro")
    assert flows.rule_matches(rule, "plan_pro", first_message=False)
    assert flows.rule_matches(rule, "  plan_pro ", first_message=False)
    assert not flows.rule_matches(rule, "I like plan_pro", first_message=False)
    assert not flows.rule_matches(rule, "PLAN_PRO", first_message=False)


def test_greeting_only_on_first_message():
    assert flows.rule_matches(R("greeting"), "anything", first_message=True)
    assert not flows.rule_matches(R("greeting"), "anything", first_message=False)


def test_inactive_rules_never_match_and_order_decides():
    rules = [R("keyword", "price", active=False), R("keyword", "price, cost"), R("regex", "price")]
    assert flows.first_match(rules, "what price?", first_message=False) is rules[1]
    assert flows.first_match(rules, "hello", first_message=False) is None
    greeting_then_kw = [R("greeting"), R("keyword", "price")]
    assert (
        flows.first_match(greeting_then_kw, "price", first_message=True, skip=["greeting"])
        is greeting_then_kw[1]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi there!", True),
        ("good morning :)", True),
        ("", True),
        ("hi, where is my order?", False),
        ("hi, are you there?", True),  # small talk asks nothing yet: the greeting answers it
        ("hello, how are you?", True),
        ("hey can you help me", True),
        ("hi, I have a question", True),
        ("hey can you help me with a refund", False),
        ("hi, is it open on sunday?", False),
        ("is it up?", False),
        ("is it ok", False),
    ],
)
def test_is_salutation(text, expected):
    assert flows.is_salutation(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sure, it's Jane.Doe@Example.com.", "Jane.Doe@Example.com"),
        ("<bob@example.org>", "bob@example.org"),
        ("no email here", None),
        ("me@localhost", None),
        ("a@b@c.com", None),
    ],
)
def test_find_email(text, expected):
    assert flows.find_email(text) == expected


# --- model validation --------------------------------------------------------------------


def _rule(**kwargs) -> FlowRule:
    defaults = {
        "name": "r",
        "trigger": FlowTrigger.KEYWORD,
        "pattern": "price",
        "action": FlowAction.REPLY,
        "reply_text": "Hi",
    }
    return FlowRule(**{**defaults, **kwargs})


@pytest.mark.django_db
def test_invalid_regex_is_refused_with_a_clear_message(bot):
    with pytest.raises(ValidationError) as err:
        _rule(bot=bot, trigger=FlowTrigger.REGEX, pattern="(unclosed").full_clean()
    assert "does not compile" in err.value.message_dict["pattern"][0]
    with pytest.raises(ValidationError) as err:
        _rule(bot=bot, trigger=FlowTrigger.REGEX, pattern=".*").full_clean()
    assert "matches an empty message" in err.value.message_dict["pattern"][0]


@pytest.mark.django_db
def test_keyword_button_and_quick_replies_validation(bot):
    with pytest.raises(ValidationError) as err:
        _rule(bot=bot, pattern=" , ").full_clean()
    assert "comma" in err.value.message_dict["pattern"][0]
    with pytest.raises(ValidationError) as err:
        _rule(bot=bot, trigger=FlowTrigger.BUTTON, pattern="").full_clean()
    assert "button value" in err.value.message_dict["pattern"][0]
    with pytest.raises(ValidationError) as err:
        _rule(bot=bot, action=FlowAction.QUICK_REPLIES, quick_replies=[{"label": "x"}]).full_clean()
    assert "label" in err.value.message_dict["quick_replies"][0]
    with pytest.raises(ValidationError) as err:
        _rule(bot=bot, action=FlowAction.QUICK_REPLIES, quick_replies=[]).full_clean()
    assert "at least one button" in err.value.message_dict["quick_replies"][0]
    with pytest.raises(ValidationError) as err:
        _rule(bot=bot, reply_text="").full_clean()
    assert "reply_text" in err.value.message_dict
    # Handoff and collect-email rules may leave the text empty (defaults apply).
    _rule(bot=bot, action=FlowAction.HANDOFF, reply_text="").full_clean()


@pytest.mark.django_db
def test_tenant_follows_the_bot_and_cannot_differ(bot, other_tenant):
    rule = _rule(bot=bot)
    rule.full_clean()
    rule.save()
    assert rule.tenant_id == bot.tenant_id
    mixed = _rule(bot=bot, tenant=other_tenant)
    with pytest.raises(ValidationError) as err:
        mixed.full_clean()
    assert "another tenant" in err.value.message_dict["bot"][0]


@pytest.mark.django_db
def test_factory_rule_is_valid():
    rule = FlowRuleFactory(bot=BotFactory())
    rule.full_clean()
    assert rule.tenant == rule.bot.tenant


# --- tenant regexes cannot hold a worker -------------------------------------------------


def test_a_catastrophic_regex_saved_anyway_gives_up_in_time_and_does_not_match():
    import time

    rule = R("regex", r"(a|aa)+b")  # exponential backtracking on a run of a's
    started = time.perf_counter()
    assert not flows.rule_matches(rule, "a" * 1500, first_message=False)
    assert time.perf_counter() - started < 1.0  # the stdlib re would take minutes here
    assert flows.rule_matches(rule, "aab", first_message=False)


def test_a_catastrophic_regex_is_refused_when_saved(bot):
    with pytest.raises(ValidationError, match="takes too long"):
        _rule(bot=bot, trigger=FlowTrigger.REGEX, pattern=r"(a|aa)+b").full_clean()
    _rule(bot=bot, trigger=FlowTrigger.REGEX, pattern=r"order\s*#?\d{5}").full_clean()


def test_a_regex_that_would_take_seconds_to_compile_is_refused_and_never_compiled(bot, monkeypatch):
    bomb = r"(?:(?:(?:a{60}){60}){60}){60}"  # `regex` spends seconds compiling this
    with pytest.raises(ValidationError, match="repeats too much"):
        _rule(bot=bot, trigger=FlowTrigger.REGEX, pattern=bomb).full_clean()
    with pytest.raises(ValidationError, match="repeats too much"):
        _rule(bot=bot, trigger=FlowTrigger.REGEX, pattern="a{5000}").full_clean()
    compiled = []
    monkeypatch.setattr(flows.regex, "compile", lambda *a, **k: compiled.append(a))
    assert not flows.rule_matches(R("regex", bomb), "aaaa", first_message=False)
    assert compiled == []  # saved around validation: refused before `regex` sees it
    monkeypatch.undo()
    _rule(bot=bot, trigger=FlowTrigger.REGEX, pattern=r"(?:\d{3}-){2}\d{4}").full_clean()


@pytest.mark.parametrize("pattern", [r"[[:digit:]]+", r"colou?r{e<=1}"])
def test_syntax_that_means_something_else_outside_python_re_is_refused(bot, pattern):
    with pytest.raises(ValidationError, match="not supported"):
        _rule(bot=bot, trigger=FlowTrigger.REGEX, pattern=pattern).full_clean()
