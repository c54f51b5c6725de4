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
