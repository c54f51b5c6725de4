import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bots.models import Bot
from bots.selectors import bot_list
from bots.services import answer_question
from tenants.selectors import tenant_get_by_slug

ENGINE_FAILURES = ("timeout", "error")


class Command(BaseCommand):
    help = (
        "Ask a tenant's bot questions through the same engine the widget uses; prints one JSON "
        "line per question: {question, answer, article_ids, article_titles, confidence, outcome, "
        "reason}. outcome is answered, fallback or handoff; when the engine timed out or failed "
        "the visitor gets the fallback, so outcome is fallback and reason says timeout or error "
        "(else null)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("questions", nargs="*", help="questions to ask")
        parser.add_argument("--file", help="a text file with one question per line")
        parser.add_argument(
            "--bot", help="bot name (default: the tenant's first bot, or the engine defaults)"
        )

    def handle(self, *args, tenant: str, questions: list[str], file: str | None, **options):
        target = tenant_get_by_slug(slug=tenant)
        if target is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        bots = bot_list(tenant=target)
        if options["bot"]:
            bot = bots.filter(name=options["bot"]).first()
            if bot is None:
                raise CommandError(f"Tenant {tenant!r} has no bot named {options['bot']!r}.")
        else:
            # Without a bot the built-in knowledge engine answers with the default settings.
            bot = bots.first() or Bot(tenant=target, name="Knowledge base")
        questions = [q for q in questions if q.strip()]
        if file:
            try:
                lines = Path(file).read_text(encoding="utf-8-sig").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"Cannot read {file}: {exc}") from exc
            questions += [line.strip() for line in lines if line.strip()]
        if not questions:
            raise CommandError("Give at least one question, or --file with one per line.")
        for question in questions:
            reply = answer_question(bot=bot, question=question)
            line = {
                "question": question,
                "answer": reply.text,
                "article_ids": reply.article_ids,
                "article_titles": reply.article_titles,
                "confidence": None if reply.confidence is None else round(reply.confidence, 3),
                # The visitor got the fallback copy whatever made the engine miss.
                "outcome": "fallback" if reply.outcome in ENGINE_FAILURES else reply.outcome,
                "reason": reply.outcome if reply.outcome in ENGINE_FAILURES else None,
            }
            self.stdout.write(json.dumps(line, ensure_ascii=False))
