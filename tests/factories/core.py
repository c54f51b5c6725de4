import factory
from django.contrib.auth import get_user_model

from bots.models import Bot
from crm.models import Channel, Conversation, Direction, Message, SenderType
from tenants.models import Membership, PlanTier, Role, Tenant

PASSWORD = "correct-horse-battery"


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")
    plan_tier = PlanTier.PRO


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    username = factory.SelfAttribute("email")

    @factory.post_generation
    def password(user, create, extracted, **kwargs):
        user.set_password(extracted or PASSWORD)
        if create:
            user.save(update_fields=["password"])


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Role.AGENT


class BotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bot

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Bot {n}")


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    tenant = factory.SubFactory(TenantFactory)
    channel = Channel.WEB


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    tenant = factory.SelfAttribute("conversation.tenant")
    direction = Direction.INBOUND
    sender_type = SenderType.VISITOR
    text = factory.Sequence(lambda n: f"Hello {n}")
