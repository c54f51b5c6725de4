import json
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from bots.models import Bot
from tenants.models import Membership, PlanTier, Role, Tenant

User = get_user_model()

DEMO_SLUG = "demo"
OWNER_EMAIL = "owner@demo.example"
OPERATOR_USERNAME = "operator"


def _user_with_fresh_password(*, username: str, email: str, superuser: bool = False) -> tuple:
    user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
    password = secrets.token_urlsafe(9)
    user.email = email
    user.is_staff = user.is_superuser = superuser
    user.set_password(password)
    user.save()
    return user, password


class Command(BaseCommand):
    help = (
        "Create (or top up) the demo tenant, its owner, an operator superuser and a bot. "
        "Safe to re-run: existing data is kept; the demo logins get fresh passwords, printed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print the logins as JSON"
        )

    @transaction.atomic
    def handle(self, *args, as_json: bool = False, **options):
        tenant, _ = Tenant.objects.get_or_create(
            slug=DEMO_SLUG, defaults={"name": "Northwind Outfitters", "plan_tier": PlanTier.PRO}
        )
        owner, owner_password = _user_with_fresh_password(username=OWNER_EMAIL, email=OWNER_EMAIL)
        Membership.objects.get_or_create(user=owner, tenant=tenant, defaults={"role": Role.OWNER})
        operator, operator_password = _user_with_fresh_password(
            username=OPERATOR_USERNAME, email="operator@replybase.example", superuser=True
        )
        Bot.objects.get_or_create(tenant=tenant, name="Northwind helper")

        result = {
            "tenant_slug": tenant.slug,
            "owner": {"email": owner.email, "password": owner_password},
            "operator": {"username": operator.username, "password": operator_password},
        }
        if as_json:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(f"Demo tenant: {tenant.name} (slug {tenant.slug})")
        self.stdout.write(f"Dashboard login: {owner.email} / {owner_password}")
        self.stdout.write(f"Operator (admin) login: {operator.username} / {operator_password}")
