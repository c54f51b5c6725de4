"""Behaviour of the offline knowledge-base answer engine (pure Python: no database).

Runs without Django: ``pytest tests/bots/test_retrieval.py -p no:django``.
"""

import random
import time

import pytest

from bots.retrieval import DEFAULT_THRESHOLD, Answer, Doc, KnowledgeIndex, is_handoff_request
from eval.run import TARGET_CORRECT, TARGET_DECLINED, build_evaluation, load_docs

SHIPPING = "Shipping options and delivery times"
ACCOUNT = "Account, sign-in and password reset"
WARRANTY = "Warranty and the Northwind guarantee"
REFUNDS = "Refunds: timing and methods"
GIFT_CARDS = "Gift cards"
RENTALS = "Gear rentals"
PAYMENT = "Payment methods we accept"
NEWSLETTER = "Newsletter and email preferences"


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return load_docs()


@pytest.fixture(scope="module")
def kb(docs) -> KnowledgeIndex:
    return KnowledgeIndex(docs)


def answered_title(kb: KnowledgeIndex, question: str) -> str:
    answer = kb.answer(question)
    assert answer.answered, f"{question!r} declined (confidence {answer.confidence:.2f})"
    return answer.article_titles[0]


# --- matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "spelled"),
    [
        ("how much is shiping", "how much is shipping"),
        ("i forgot my pasword", "i forgot my password"),
        ("is there a lifetime guarentee", "is there a lifetime guarantee"),
        ("can i get a refnud", "can i get a refund"),
        ("giftcard balance", "gift card balance"),
    ],
)
def test_typos_find_the_same_article_as_correct_spelling(kb, typo, spelled):
    assert answered_title(kb, typo) == answered_title(kb, spelled)


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("when do i get my money back", REFUNDS),  # "money back" = refund
        ("whats the postage to alaska", SHIPPING),  # "postage" = shipping
        ("can i hire snowshoes", RENTALS),  # "hire" = rent
        ("do u take afterpay", PAYMENT),  # slang + "afterpay" = instalments
        ("how do i get off your mailing list", NEWSLETTER),
        ("i forgot my pasword", ACCOUNT),
        ("is there a lifetime guarentee", WARRANTY),
        ("do giftcards expire", GIFT_CARDS),
    ],
)
def test_paraphrases_and_synonyms_reach_the_right_article(kb, question, title):
    assert answered_title(kb, question) == title


@pytest.mark.parametrize(
    "question",
    [
        "what's the weather like in paris",
        "write me a poem about mountains",
        "who won the game last night",
        "do you sell kayaks on finance with 0% apr",
        "what is your policy on pets",
        "asdfghjkl qwerty",
        "thanks!",
    ],
)
def test_questions_the_articles_cannot_answer_are_declined(kb, question):
    answer = kb.answer(question)
    assert answer == Answer("", [], [], answer.confidence, False)
    assert answer.confidence < DEFAULT_THRESHOLD


def test_the_shops_own_name_before_card_means_a_store_card():
    """A word many articles capitalise is the shop's name: "<shop> credit card" is a card
    of its own, which no article covers, while cards it accepts are still answered."""
    docs = [
        Doc(1, "Payment", "We accept Visa and Mastercard credit cards and Acme gift cards."),
        Doc(2, "Stores", "Our Acme stores are open every day. Pay there with Visa."),
        Doc(
            3, "Returns", "Return items to any Acme store within 30 days. Visa refunds take a week."
        ),
        Doc(4, "Shipping", "Standard shipping takes 3 to 5 business days."),
    ]
    index = KnowledgeIndex(docs)
    assert index.answer("do you take credit cards").article_titles == ["Payment"]
    assert index.answer("can i pay with an acme gift card").article_titles == ["Payment"]
    assert not index.answer("can i get an acme credit card").answered
    # Known vocabulary is never the shop's name, however many articles capitalise it.
    terms = [term for term, *_ in index.explain("can i pay with a visa credit card")["terms"]]
    assert "creditcard" in terms and "storecard" not in terms


def test_incidental_days_and_verb_forms_do_not_count_as_unknown_topics(kb):
    assert answered_title(kb, "i saw it cheaper at another store") == "Price match promise"
    assert answered_title(kb, "ordered on tuesday, where is my package") == "Tracking your order"


def test_threshold_decides_answered_and_confidence_is_bounded(kb):
    question = "how much is shipping"
    default = kb.answer(question)
    assert default.answered and 0.0 <= default.confidence <= 1.0
    assert kb.answer(question, threshold=0.0).answered
    strict = kb.answer(question, threshold=1.0)
    assert not strict.answered and strict.article_ids == []
    assert strict.confidence == pytest.approx(default.confidence)


def test_search_returns_at_most_k_articles_best_first(kb):
    results = kb.search("refund for a return", k=2)
    assert len(results) == 2
    assert all(isinstance(doc, Doc) for doc, _ in results)
    assert results[0][1] >= results[1][1]
    assert kb.search("", k=3) == [] and kb.search("refund", k=0) == []


# --- robustness ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "",
        "   \n\t ",
        "\U0001f642\U0001f44d",
        "?!?!",
        "\x00\x01",
        "caf\u00e9 \u00f1and\u00fa",
        "x" * 4000,
    ],
)
def test_odd_input_never_raises_and_is_declined(kb, question):
    answer = kb.answer(question)
    assert not answer.answered and answer.text == "" and answer.article_ids == []
    assert kb.search(question) is not None


def test_a_very_long_message_is_still_answered_from_its_start(kb):
    question = "how much is standard shipping to hawaii " + "please help me " * 300
    assert len(question) > 4000
    assert answered_title(kb, question) == SHIPPING


def test_an_empty_knowledge_base_declines_everything():
    empty = KnowledgeIndex([])
    answer = empty.answer("how much is shipping")
    assert not answer.answered and answer.confidence == 0.0
    assert empty.search("how much is shipping") == []


def test_results_are_deterministic(docs):
    questions = ["how much is shiping", "refund??", "do you sell kayaks", "wheres my order"]
    first, second = KnowledgeIndex(docs), KnowledgeIndex(list(docs))
    for question in questions:
        assert first.answer(question) == second.answer(question) == first.answer(question)
        assert first.search(question) == second.search(question)


# --- answer text ----------------------------------------------------------------------------


def test_answer_text_is_the_relevant_part_of_the_best_article(kb, docs):
    answer = kb.answer("how much does standard shipping cost")
    body = " ".join(next(d for d in docs if d.title == SHIPPING).body.split())
    assert answer.article_titles == [SHIPPING]
    assert "$6.95" in answer.text
    assert answer.text in body and len(answer.text) < len(body)


def test_answer_text_follows_the_question_within_an_article(kb):
    password = kb.answer("i forgot my password").text
    locked = kb.answer("my account is locked").text
    assert "Forgot password" in password
    assert "locked for 15 minutes" in locked and "Forgot password" not in locked


@pytest.mark.parametrize(
    "body",
    [
        "Returns: " + "; ".join(f"item {n} can be returned within 30 days" for n in range(60)),
        "退货政策" + "。".join("三十天内可以退货" for _ in range(200)),
        "returns " + "x" * 5000,
    ],
    ids=["semicolons", "cjk", "one word"],
)
def test_an_answer_from_one_long_sentence_is_cut_to_the_cap(body):
    from bots.retrieval import MAX_ANSWER_CHARS, extract_answer

    doc = Doc(id="r", title="Returns", body=body)
    answer = extract_answer(doc, {"returns": 1.0, "returned": 1.0})
    assert len(answer) <= MAX_ANSWER_CHARS and answer.endswith("…")


def test_a_short_article_is_answered_whole():
    doc = Doc(id="pets", title="Pets in stores", body="Dogs on a leash are welcome in all stores.")
    answer = KnowledgeIndex([doc]).answer("are dogs welcome in your stores?")
    assert answer.answered and answer.text == doc.body and answer.article_ids == ["pets"]


# --- handoff ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "can I talk to a human",
        "real person pls",
        "agent",
        "speak to someone",
        "HUMAN!!",
        "connect me to an agent please",
        "I want a human, not a bot",
        "put me through to customer service",
        "can i speak with the manager?",
        "is there a real person I can talk to?",
        "are you a bot? I want to talk to a human",
        "not now, I want a human",
        "I don't want the bot, I want a person",
        "no more bots",
        # requests that a refusal elsewhere, or a question about the bot, must not hide
        "I cant log in please connect me to support",
        "no that didnt help i need an agent",
        "why can't I talk to a human",
        "not working talk to agent",
        "this did not help connect me to an agent",
        "are you a bot? ugh real person",
        "r u a bot, real human pls",
        "no not a bot",
    ],
)
def test_requests_for_a_person_are_handoffs(text):
    assert is_handoff_request(text)


@pytest.mark.parametrize(
    "text",
    [
        "how do I contact support?",
        "what are your customer service hours",
        "is there live chat",
        "someone stole my package",
        "can someone else pick up my order",
        "I need someone to pick up my order",
        "the delivery person was rude",
        "how much is shipping",
        "",
        "\U0001f642",
        "x" * 4000,
        "is this a real person?",
        "are you human",
        "am I talking to a bot",
        "I do not want to talk to a person",
        "I don\u2019t need a human, just the shipping cost",
        "no need for an agent, thanks",
        "I'm not a robot lol",
        "chat with support hours",
    ],
)
def test_ordinary_messages_are_not_handoffs(text):
    assert not is_handoff_request(text)


# --- scale ------------------------------------------------------------------------------------


def _synthetic_docs(n: int, seed: int = 7) -> list[Doc]:
    """Articles of ~150 words over a large made-up vocabulary (stress for typo matching)."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ter", "sun", "dra", "vel", "or", "pin", "que", "zu", "ath"]
    vocab = ["".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(20_000)]
    return [
        Doc(
            id=f"s{i}",
            title=" ".join(rng.choices(vocab, k=4)),
            body=" ".join(rng.choices(vocab, k=150)),
            tags=tuple(rng.choices(vocab, k=2)),
        )
        for i in range(n)
    ]


def _build_seconds(docs: list[Doc]) -> float:
    """CPU seconds (not wall time: other processes on a busy CI machine don't count)."""
    best = float("inf")
    for _ in range(3):  # best of three: robust against GC pauses
        started = time.process_time()
        KnowledgeIndex(docs)
        best = min(best, time.process_time() - started)
    return best


def test_two_thousand_articles_build_in_linear_time_and_answer_fast(docs):
    small, large = _synthetic_docs(500), _synthetic_docs(2000)
    small_seconds, large_seconds = _build_seconds(small), _build_seconds(large)
    # Linear growth gives a ratio near 4; allow noise but catch anything quadratic (16).
    assert large_seconds / small_seconds < 8
    assert large_seconds < 5  # generous: about 0.3 s on a developer machine

    index = KnowledgeIndex([*large, *docs])
    started = time.process_time()
    for _ in range(10):
        assert answered_title(index, "how much is shipping") == SHIPPING
        assert not index.answer("do you sell kayaks on finance").answered
    assert time.process_time() - started < 5  # 20 answers; about 0.1 s on a developer machine


# --- eval -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluation():
    return build_evaluation()


def test_eval_meets_the_targets_on_the_all_split(evaluation):
    engine, _ = evaluation.run("all")
    assert engine.correct_rate >= TARGET_CORRECT, engine.summary()
    assert engine.declined_rate >= TARGET_DECLINED, engine.summary()


def test_eval_engine_beats_plain_bm25_on_every_split(evaluation):
    for split in ("dev", "test", "all"):
        engine, baseline = evaluation.run(split)
        assert engine.correct_rate > baseline.correct_rate, (split, engine.summary())
        assert engine.declined_rate > baseline.declined_rate, (split, engine.summary())


def test_eval_does_not_regress_below_measured_quality(evaluation):
    """Floors at the quality measured when the engine was written; raise them as it improves."""
    floors = {"dev": (0.945, 0.96), "test": (0.846, 0.923), "all": (0.92, 0.952)}
    for split, (correct, declined) in floors.items():
        engine, _ = evaluation.run(split)
        assert engine.correct_rate >= correct, (split, engine.summary())
        assert engine.declined_rate >= declined, (split, engine.summary())
