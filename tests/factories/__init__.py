from tests.factories.bots import FlowRuleFactory, KnowledgeArticleFactory
from tests.factories.core import (
    BotFactory,
    ConversationFactory,
    MembershipFactory,
    MessageFactory,
    TenantFactory,
    UserFactory,
)

__all__ = [
    "BotFactory",
    "ConversationFactory",
    "FlowRuleFactory",
    "KnowledgeArticleFactory",
    "MembershipFactory",
    "MessageFactory",
    "TenantFactory",
    "UserFactory",
]
