"""Signals serve cache invalidation only: a flow rule change bumps its bot's version (both
bots' when a rule moves from one bot to another)."""

from django.db.models import F
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from bots.models import Bot, FlowRule


@receiver(pre_save, sender=FlowRule)
def flow_rule_remember_bot(sender, instance: FlowRule, **kwargs) -> None:
    instance._bot_id_before = (
        FlowRule.objects.filter(pk=instance.pk).values_list("bot_id", flat=True).first()
        if instance.pk
        else None
    )


@receiver([post_save, post_delete], sender=FlowRule)
def flow_rules_changed(sender, instance: FlowRule, **kwargs) -> None:
    bots = {instance.bot_id, getattr(instance, "_bot_id_before", None)} - {None}
    Bot.objects.filter(pk__in=bots).update(flow_rules_version=F("flow_rules_version") + 1)
