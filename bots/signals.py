"""Signals serve cache invalidation only: a flow rule change bumps its bot's version."""

from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from bots.models import Bot, FlowRule


@receiver([post_save, post_delete], sender=FlowRule)
def flow_rules_changed(sender, instance: FlowRule, **kwargs) -> None:
    Bot.objects.filter(pk=instance.bot_id).update(flow_rules_version=F("flow_rules_version") + 1)
