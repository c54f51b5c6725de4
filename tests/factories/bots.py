import factory

from bots.models import FlowAction, FlowRule, FlowTrigger, KnowledgeArticle
from tests.factories.core import BotFactory, TenantFactory


class FlowRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FlowRule

    bot = factory.SubFactory(BotFactory)
    tenant = factory.SelfAttribute("bot.tenant")
    position = factory.Sequence(lambda n: n)
    name = factory.Sequence(lambda n: f"Rule {n}")
    trigger = FlowTrigger.KEYWORD
    pattern = "pricing"
    action = FlowAction.REPLY
    reply_text = "Our plans start at $9 a month."


class KnowledgeArticleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KnowledgeArticle

    tenant = factory.SubFactory(TenantFactory)
    title = factory.Sequence(lambda n: f"Article {n}")
    body = "Some helpful text."
    tags = factory.LazyFunction(list)
    published = True


# A small help centre shared by the engine and support tests: (title, body, tags).
SAMPLE_ARTICLES = [
    (
        "Shipping options and delivery times",
        "Standard shipping costs $6.95 and arrives in 3 to 5 business days. Shipping is free "
        "on orders over $75. Expedited shipping costs $14.95 and arrives in 2 business days.",
        ["shipping", "delivery"],
    ),
    (
        "Our return policy",
        "You can return unworn items within 60 days of delivery for a full refund. "
        "Start a return from the Orders page.",
        ["returns", "refund"],
    ),
    (
        "Gift cards",
        "Gift cards never expire and can be used online and in stores. Check your balance "
        "on the gift card page.",
        ["gift card"],
    ),
    (
        "Store opening hours",
        "Our stores are open 9am to 6pm Monday to Saturday and closed on Sundays.",
        ["hours", "store"],
    ),
]
