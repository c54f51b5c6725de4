import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from bots.models import Bot, FlowAction, FlowRule, FlowTrigger
from bots.services import knowledge_articles_from_path, knowledge_import
from rollout.services import rollout_demo_ensure
from tenants.models import Membership, PlanTier, Role, Tenant
from webchat.models import WebChatSite
from webchat.services import site_create

User = get_user_model()

DEMO_SLUG = "demo"
OWNER_EMAIL = "owner@demo.example"
OPERATOR_USERNAME = "operator"
OPERATOR_EMAIL = "operator@replybase.example"
DEMO_ARTICLES = Path(settings.BASE_DIR) / "eval" / "knowledge" / "articles.json"
DEMO_FLOWS = [
    {
        "name": "Welcome",
        "trigger": FlowTrigger.GREETING,
        "pattern": "",
        "action": FlowAction.QUICK_REPLIES,
        "reply_text": "Hi! I'm the Northwind helper. Ask me anything, or pick a topic:",
        "quick_replies": [
            {"label": "Track my order", "value": "track order"},
            {"label": "Returns", "value": "How do returns work?"},
            {"label": "Talk to a person", "value": "Talk to a person"},
        ],
    },
    {
        "name": "Order tracking",
        "trigger": FlowTrigger.BUTTON,
        "pattern": "track order",
        "action": FlowAction.COLLECT_EMAIL,
        "reply_text": "I can look that up. What's the email address on the order?",
        "follow_up_text": "Thanks! We'll email the tracking link for orders on {email} within a few minutes.",
    },
    {
        "name": "Order number",
        "trigger": FlowTrigger.REGEX,
        "pattern": r"\b(?:order|ord)\s*#?\s*\d{5,}\b",
        "action": FlowAction.REPLY,
        "reply_text": "Thanks for the order number. You can see its status any time under Account → Orders; "
        "a team member will also check it if you ask for a person.",
    },
    {
        "name": "Complaints go to a person",
        "trigger": FlowTrigger.KEYWORD,
        "pattern": "complaint, complain, furious, unacceptable",
        "action": FlowAction.HANDOFF,
        "reply_text": "",
    },
]


def _login_reset(user, *, email: str, superuser: bool) -> str:
    """Give `user` this email, these rights and a new password, which is returned."""
    password = secrets.token_urlsafe(9)
    user.email = email
    user.is_staff = user.is_superuser = superuser
    user.set_password(password)
    user.save()
    return password


def _owner() -> tuple:
    """The demo owner, with a fresh password every run."""
    owner, _ = User.objects.get_or_create(username=OWNER_EMAIL, defaults={"email": OWNER_EMAIL})
    return owner, _login_reset(owner, email=OWNER_EMAIL, superuser=False)


def _operator(*, force: bool) -> tuple:
    """The operator superuser and its password, set only when it is created (or with
    --force): an existing `operator` account is somebody's login, never reset behind them.
    The password is not stored, so a re-run has none to print (None)."""
    operator, created = User.objects.get_or_create(
        username=OPERATOR_USERNAME, defaults={"email": OPERATOR_EMAIL}
    )
    if not (created or force):
        return operator, None
    return operator, _login_reset(operator, email=OPERATOR_EMAIL, superuser=True)


class Command(BaseCommand):
    help = (
        "Create (or top up) the demo tenant: owner, operator superuser, bot, flows, knowledge "
        "base and a webchat site for localhost, and leave webchat on for it (pilot mode on a "
        "fresh install). Only with DEMO_MODE or DEBUG on (or --force). Safe to re-run: existing "
        "data is kept; the demo owner gets a fresh password, the operator only when created."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print the logins as JSON"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="run without DEMO_MODE or DEBUG, and set a new password for an existing operator",
        )

    @transaction.atomic
    def handle(self, *args, as_json: bool = False, force: bool = False, **options):
        if not (settings.DEMO_MODE or settings.DEBUG or force):
            raise CommandError(
                "seed_demo is for demo installs: it turns webchat back on (even after a kill "
                "switch), may move the rollout from off to pilot and creates a superuser. Set "
                "DEMO_MODE=true (make run does), or pass --force to run it here anyway."
            )
        tenant, _ = Tenant.objects.get_or_create(
            slug=DEMO_SLUG, defaults={"name": "Northwind Outfitters", "plan_tier": PlanTier.PRO}
        )
        owner, owner_password = _owner()
        Membership.objects.get_or_create(user=owner, tenant=tenant, defaults={"role": Role.OWNER})
        operator, operator_password = _operator(force=force)
        bot, _ = Bot.objects.get_or_create(tenant=tenant, name="Northwind helper")
        for position, spec in enumerate(DEMO_FLOWS):
            FlowRule.objects.get_or_create(
                tenant=tenant, bot=bot, name=spec["name"], defaults={"position": position, **spec}
            )
        knowledge_import(tenant=tenant, articles=knowledge_articles_from_path(DEMO_ARTICLES))
        site = WebChatSite.objects.filter(tenant=tenant).order_by("id").first()
        if site is None:
            site = site_create(
                tenant=tenant,
                name="Demo store",
                bot=bot,
                allowed_domains=["localhost", "127.0.0.1"],
                title="Northwind help",
                welcome_message="Hi there! Questions about an order, returns or gear? Ask away.",
            )
        rollout_demo_ensure(tenant=tenant)  # pilot mode with the demo tenant in the pilot

        result = {
            "tenant_slug": tenant.slug,
            "site_key": site.site_key,
            "owner": {"email": owner.email, "password": owner_password},
            "operator": {"username": operator.username, "password": operator_password},
        }
        if as_json:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            f"Demo tenant: {tenant.name} (slug {tenant.slug}), site key {site.site_key}"
        )
        self.stdout.write(f"Dashboard login: {owner.email} / {owner_password}")
        if operator_password:
            self.stdout.write(f"Operator (admin) login: {operator.username} / {operator_password}")
        else:
            self.stdout.write(
                f"Operator (admin) login: {operator.username} / the password it already had "
                "(printed when it was created; `manage.py seed_demo --force` sets a new one)"
            )
