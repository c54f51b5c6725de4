import factory

from webchat.models import WebChatSite

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
