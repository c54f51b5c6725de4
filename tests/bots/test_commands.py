"""`manage.py import_knowledge` and `manage.py ask`."""

import json
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from bots.models import Engine, KnowledgeArticle
from bots.services import IMPORT_FILE_MAX_BYTES
from tests.bots.conftest import ARTICLES
from tests.factories import BotFactory, TenantFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def json_file(tmp_path):
    path = tmp_path / "kb.json"
    path.write_text(json.dumps([{"title": t, "body": b, "tags": g} for t, b, g in ARTICLES]))
    return path


def test_import_json_then_reimport_updates_by_title(tenant, json_file):
    out = run("import_knowledge", "--tenant", tenant.slug, str(json_file))
    assert "4 created, 0 updated, 0 unchanged" in out
    assert KnowledgeArticle.objects.filter(tenant=tenant, published=True).count() == 4

    data = json.loads(json_file.read_text())
    data[0]["body"] = "Shipping is always free."
    data.append({"title": "Price match", "body": "We match any lower price."})
    json_file.write_text(json.dumps(data))
    out = run("import_knowledge", "--tenant", tenant.slug, str(json_file))
    assert "1 created, 1 updated, 3 unchanged" in out
    assert KnowledgeArticle.objects.filter(tenant=tenant).count() == 5
    shipping = KnowledgeArticle.objects.get(tenant=tenant, title=data[0]["title"])
    assert shipping.body == "Shipping is always free."
    assert KnowledgeArticle.objects.get(tenant=tenant, title="Price match").tags == []


def test_import_is_per_tenant(tenant, other_tenant, json_file):
    run("import_knowledge", "--tenant", tenant.slug, str(json_file))
    out = run("import_knowledge", "--tenant", other_tenant.slug, str(json_file))
    assert "4 created" in out
    assert KnowledgeArticle.objects.filter(tenant=other_tenant).count() == 4


def test_import_markdown_folder(tenant, tmp_path):
    (tmp_path / "shipping.md").write_text(
        "tags: shipping, delivery\n\n# Shipping costs\n\nStandard shipping is $6.95.\n\n"
        "## Express\nExpress is $14.95.\n"
    )
    (tmp_path / "returns.md").write_text("# Returns #\ntags: returns\n\nReturn within 60 days.\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "gift.md").write_text(
        "---\nauthor: ops\ntags: [gift card, balance]\n---\n# Gift cards\nThey never expire.\n"
    )
    (tmp_path / "notes.txt").write_text("ignored")
    out = run("import_knowledge", "--tenant", tenant.slug, str(tmp_path))
    assert "3 created, 0 updated, 0 unchanged" in out
    shipping = KnowledgeArticle.objects.get(tenant=tenant, title="Shipping costs")
    assert shipping.tags == ["shipping", "delivery"]
    assert shipping.body == "Standard shipping is $6.95.\n\n## Express\nExpress is $14.95."
    returns = KnowledgeArticle.objects.get(tenant=tenant, title="Returns")
    assert (returns.tags, returns.body) == (["returns"], "Return within 60 days.")
    assert KnowledgeArticle.objects.get(tenant=tenant, title="Gift cards").tags == [
        "gift card",
        "balance",
    ]
    out = run("import_knowledge", "--tenant", tenant.slug, str(tmp_path))
    assert "0 created, 0 updated, 3 unchanged" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"title": "A", "body": "x"}, ', "not valid JSON"),
        ('{"title": "A", "body": "x"}', "JSON list"),
        ('[{"title": "A", "body": "x"}, {"title": "", "body": "y"}]', "item 2: a non-empty title"),
        ('[{"title": "A", "body": "x"}, {"title": "B"}]', "item 2: a non-empty body"),
        ('[{"title": "A", "body": "x", "tags": [1]}]', "tags must be a list of strings"),
        ('[{"title": "A", "body": "x"}, {"title": "A", "body": "y"}]', "same title appears twice"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (
            '[{"title": "A", "body": "x"}, {"title": "Big", "body": "' + "w" * 20_001 + '"}]',
            "'Big': An article is at most 20,000 characters",
        ),
        # What PostgreSQL or UTF-8 cannot store: refused by name, not a DataError traceback.
        ('[{"title": "A\\u0000B", "body": "x"}]', "item 1: title holds a character"),
        ('[{"title": "A", "body": "x\\u0000"}]', "item 1: body holds a character"),
        ('[{"title": "A", "body": "x", "tags": ["a\\u0000"]}]', "item 1: tags hold a character"),
        ('[{"title": "A\\ud800", "body": "x"}]', "item 1: title holds a character"),
        ("[" + "1" * 5000 + "]", "cannot be read as JSON"),  # past Python's int digit limit
    ],
    ids=[
        "truncated",
        "not a list",
        "no title",
        "no body",
        "tags",
        "twice",
        "deep",
        "huge",
        "nul title",
        "nul body",
        "nul tag",
        "surrogate",
        "long number",
    ],
)
def test_bad_json_is_refused_and_nothing_is_imported(tenant, tmp_path, content, message):
    path = tmp_path / "kb.json"
    path.write_text(content)
    with pytest.raises(CommandError, match=message) as err:
        run("import_knowledge", "--tenant", tenant.slug, str(path))
    assert "Nothing was imported" in str(err.value)
    assert not KnowledgeArticle.objects.filter(tenant=tenant).exists()


def test_bad_markdown_file_refuses_the_whole_folder(tenant, tmp_path):
    (tmp_path / "a.md").write_text("# Good\nFine body.\n")
    (tmp_path / "b.md").write_text("No heading at all.\n")
    with pytest.raises(CommandError, match=r"b\.md, line 1: text before the first # heading"):
        run("import_knowledge", "--tenant", tenant.slug, str(tmp_path))
    (tmp_path / "b.md").write_bytes(b"# Title\n\xff\xfe not utf-8")
    with pytest.raises(CommandError, match="not UTF-8"):
        run("import_knowledge", "--tenant", tenant.slug, str(tmp_path))
    assert not KnowledgeArticle.objects.filter(tenant=tenant).exists()


def test_markdown_with_a_nul_character_is_refused(tenant, tmp_path):
    (tmp_path / "a.md").write_text("# Title\nA body with a NUL \x00 in it.\n")
    with pytest.raises(CommandError, match=r"a\.md: body holds a character"):
        run("import_knowledge", "--tenant", tenant.slug, str(tmp_path))
    assert not KnowledgeArticle.objects.filter(tenant=tenant).exists()


def test_only_regular_files_of_a_sane_size_are_read(tenant, tmp_path):
    """A device given by mistake (/dev/zero) would be read until memory runs out."""
    with pytest.raises(CommandError, match="/dev/null is not a regular file"):
        run("import_knowledge", "--tenant", tenant.slug, "/dev/null")
    huge = tmp_path / "kb.json"
    with huge.open("wb") as f:
        f.truncate(IMPORT_FILE_MAX_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(CommandError, match=r"kb\.json is 33,554,433 bytes"):
        run("import_knowledge", "--tenant", tenant.slug, str(huge))
    assert not KnowledgeArticle.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db(transaction=True)
def test_an_import_racing_another_one_is_refused_whole(tmp_path):
    """Another import (or an edit) creates one of the titles after this one looked them up:
    a clear error and nothing imported, not an IntegrityError traceback."""
    tenant = TenantFactory()
    path = tmp_path / "kb.json"
    path.write_text(json.dumps([{"title": "A", "body": "x"}, {"title": "B", "body": "y"}]))
    created, release = threading.Event(), threading.Event()

    def other_import() -> None:
        try:
            with transaction.atomic():
                KnowledgeArticle.objects.create(tenant=tenant, title="A", body="theirs")
                created.set()
                release.wait(10)
        finally:
            connection.close()

    other = threading.Thread(target=other_import)
    other.start()
    assert created.wait(10)
    threading.Timer(0.5, release.set).start()  # commits while this import waits on "A"
    with pytest.raises(CommandError, match="created one of these titles meanwhile"):
        run("import_knowledge", "--tenant", tenant.slug, str(path))
    other.join(10)
    assert list(KnowledgeArticle.objects.filter(tenant=tenant).values_list("body", flat=True)) == [
        "theirs"
    ]
    assert "1 updated" in run("import_knowledge", "--tenant", tenant.slug, str(path))


def test_import_errors_for_unknown_tenant_and_missing_path(tenant, tmp_path):
    with pytest.raises(CommandError, match="No tenant"):
        run("import_knowledge", "--tenant", "nope", str(tmp_path))
    with pytest.raises(CommandError, match="does not exist"):
        run("import_knowledge", "--tenant", tenant.slug, str(tmp_path / "missing.json"))
    with pytest.raises(CommandError, match="no Markdown"):
        run("import_knowledge", "--tenant", tenant.slug, str(tmp_path))
    with pytest.raises(CommandError, match=r"Give a \.json file"):
        run("import_knowledge", "--tenant", tenant.slug, "")  # not the working directory
    assert not KnowledgeArticle.objects.filter(tenant=tenant).exists()


# --- ask ---------------------------------------------------------------------------------

KEYS = {"question", "answer", "article_ids", "article_titles", "confidence", "outcome", "reason"}


def ask(*args: str) -> list[dict]:
    lines = run("ask", *args).splitlines()
    parsed = [json.loads(line) for line in lines]
    assert all(set(item) == KEYS for item in parsed)
    return parsed


def test_ask_prints_one_json_line_per_question(tenant, bot, articles):
    covered, off_topic, human = ask(
        "--tenant",
        tenant.slug,
        "How much does shipping cost?",
        "What is the capital of France?",
        "can I talk to a human",
    )
    assert covered["outcome"] == "answered"
    assert covered["article_titles"][0] == "Shipping options and delivery times"
    assert covered["article_ids"][0] == articles[0].pk
    assert "$6.95" in covered["answer"] and covered["confidence"] > 0.5
    assert off_topic["outcome"] == "fallback" and off_topic["answer"] == bot.fallback_text
    assert off_topic["article_ids"] == []
    assert human["outcome"] == "handoff" and human["answer"] == bot.handoff_text
    assert [r["reason"] for r in (covered, off_topic, human)] == [None, None, None]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [({"kind": "status", "status": 500}, "error"), ({"kind": "hang", "seconds": 5}, "timeout")],
    ids=["error", "timeout"],
)
def test_ask_prints_an_engine_failure_as_the_fallback_it_gave(
    tenant, articles, llm_standin, fault, reason
):
    """The contract is answered | fallback | handoff: a timeout or an engine error is the
    fallback the visitor got, with the cause in `reason`."""
    bot = BotFactory(
        tenant=tenant,
        engine=Engine.OPENAI,
        llm_base_url=llm_standin.base_url,
        llm_model="gpt-4o-mini",
        ai_timeout_seconds=1,
    )
    bot.set_llm_api_key(llm_standin.api_key)
    bot.save()
    llm_standin.set_fault(**fault)
    [line] = ask("--tenant", tenant.slug, "--bot", bot.name, "How much does shipping cost?")
    assert line["outcome"] == "fallback"
    assert line["reason"] == reason
    assert line["answer"] == bot.fallback_text
    assert len(llm_standin.requests) == 1  # the engine really asked


def test_ask_from_a_file_without_any_bot(other_tenant, tmp_path, json_file):
    run("import_knowledge", "--tenant", other_tenant.slug, str(json_file))
    questions = tmp_path / "q.txt"
    questions.write_text("When are your stores open?\n\n  do gift cards expire  \n")
    results = ask("--tenant", other_tenant.slug, "--file", str(questions))
    assert [r["question"] for r in results] == [
        "When are your stores open?",
        "do gift cards expire",
    ]
    assert [r["outcome"] for r in results] == ["answered", "answered"]


def test_ask_errors(tenant, bot):
    with pytest.raises(CommandError, match="at least one question"):
        run("ask", "--tenant", tenant.slug)
    with pytest.raises(CommandError, match="no bot named"):
        run("ask", "--tenant", tenant.slug, "--bot", "Nope", "hi")
    with pytest.raises(CommandError, match="No tenant"):
        run("ask", "--tenant", "nope", "hi")
