from django.core.management.base import BaseCommand, CommandError

from core.exceptions import InvalidRequest
from tenants.models import PlanTier
from tenants.services import tenant_create


class Command(BaseCommand):
    help = "Create a tenant and its owner, and print the owner's login."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--slug", default=None)
        parser.add_argument("--plan", default=PlanTier.FREE, choices=PlanTier.values)
        parser.add_argument("--owner-email", required=True)

    def handle(self, *args, name, slug, plan, owner_email, **options):
        try:
            tenant, owner, password = tenant_create(
                name=name, slug=slug, plan_tier=plan, owner_email=owner_email
            )
        except InvalidRequest as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Created tenant {tenant.name!r} (slug {tenant.slug}, plan {tenant.plan_tier})."
        )
        if password:
            self.stdout.write(f"Owner login: {owner.email} / {password}")
        elif owner.has_usable_password():
            self.stdout.write(
                f"Owner {owner.email} already had an account; they can log in as usual."
            )
        else:  # invited somewhere and never chose a password
            self.stdout.write(
                f"Owner {owner.email} was invited before and has no password yet: they choose "
                "one with the invitation link or 'Forgot your password?' on /login/."
            )
