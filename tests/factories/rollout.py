import factory

from rollout.models import Mode, Override, RolloutPolicy, TenantRollout


class RolloutPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RolloutPolicy
        django_get_or_create = ("id",)

    id = 1
    mode = Mode.PILOT
    webchat_enabled = True
    allowed_tiers = factory.LazyFunction(list)


class TenantRolloutFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TenantRollout

    tenant = factory.SubFactory("tests.factories.core.TenantFactory")
    override = Override.NONE
    in_pilot = False
    canary_only = False
