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
    "MembershipFactory",
    "MessageFactory",
    "TenantFactory",
    "UserFactory",
]
