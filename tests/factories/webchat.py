from datetime import timedelta

import factory
from django.utils import timezone

from webchat.models import EventType, WebChatEvent, WebChatSession, WebChatSite

IDENTITY_SECRET = "identity-secret-for-tests"


class WebChatSiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebChatSite
        skip_postgeneration_save = True

    tenant = factory.SubFactory("tests.factories.core.TenantFactory")
    name = factory.Sequence(lambda n: f"Site {n}")
    allowed_domains = factory.LazyFunction(lambda: ["shop.example.com", "*.example.org"])
    bot = None

    @factory.post_generation
    def identity_secret(site, create, extracted, **kwargs):
        site.set_identity_secret(extracted or IDENTITY_SECRET)
        if create:
            site.save(update_fields=["identity_secret_encrypted"])


class WebChatSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebChatSession

    site = factory.SubFactory(WebChatSiteFactory)
    tenant = factory.SelfAttribute("site.tenant")
    conversation = factory.SubFactory(
        "tests.factories.core.ConversationFactory", tenant=factory.SelfAttribute("..tenant")
    )
    visitor_id = factory.Sequence(lambda n: f"visitor-{n}")
    origin = "https://shop.example.com"
    last_seen_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))


class WebChatEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebChatEvent

    session = factory.SubFactory(WebChatSessionFactory)
    site = factory.SelfAttribute("session.site")
    tenant = factory.SelfAttribute("session.tenant")
    type = EventType.LAUNCHER_OPENED
