from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bots.services import knowledge_articles_from_path, knowledge_import
from core.exceptions import InvalidRequest
from tenants.selectors import tenant_get_by_slug


class Command(BaseCommand):
    help = (
        "Import knowledge-base articles for a tenant from a JSON file (a list of "
        "{title, body, tags}) or a folder of Markdown files (first '# heading' is the title, "
        "optional 'tags: a, b' line). Re-importing updates articles by title; all or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("path", help="a .json file, a .md file or a folder of .md files")

    def handle(self, *args, tenant: str, path: str, **options):
        target = tenant_get_by_slug(slug=tenant)
        if target is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        if not path:  # Path("") is the working directory: it would import the repo's Markdown
            raise CommandError("Give a .json file, a .md file or a folder of .md files.")
        try:
            articles = knowledge_articles_from_path(Path(path))
            counts = knowledge_import(tenant=target, articles=articles)
        except InvalidRequest as exc:
            raise CommandError(f"{exc.message} Nothing was imported.") from exc
        self.stdout.write(
            f"Imported {len(articles)} articles into {target.slug}: {counts.created} created, "
            f"{counts.updated} updated, {counts.unchanged} unchanged."
        )
