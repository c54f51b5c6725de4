"""Rollout state: the global policy, per-tenant state, audit trail, schedules, gate results.

Every write goes through `rollout.services`, which writes an `AuditEntry` (with a snapshot
of the gate metrics) in the same transaction and makes every cached decision stale.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import BaseModel


class Mode(models.TextChoices):
    OFF = "off", "Off"
    PILOT = "pilot", "Pilot"
    TIERED = "tiered", "Tiered"
    GA = "ga", "General availability"


# From narrowest to widest: moving right is a widening (a promotion of the whole channel).
MODE_ORDER = [Mode.OFF, Mode.PILOT, Mode.TIERED, Mode.GA]


class Override(models.TextChoices):
    NONE = "", "Follow the policy"
    FORCE_ON = "on", "Forced on"
    FORCE_OFF = "off", "Forced off"
    HOLD_PILOT = "pilot", "Held at pilot"


class Stage(models.TextChoices):
    """How much of a tenant's traffic the policy lets through (ignoring the kill switch)."""

    OFF = "off", "Off"
    CANARY = "canary", "Pilot, canary sites only"
    PILOT = "pilot", "Pilot, all sites"
    FULL = "full", "Full"


STAGE_ORDER = [Stage.OFF, Stage.CANARY, Stage.PILOT, Stage.FULL]


class RolloutPolicy(BaseModel):
    """The one global policy (a single row, id 1). Until it is saved the defaults apply."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.GA)
    webchat_enabled = models.BooleanField(
        default=True, help_text="Global kill switch: off refuses every webchat request."
    )
    allowed_tiers = models.JSONField(
        default=list, blank=True, help_text="Plan tiers enabled in tiered mode."
    )

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="rollout_policy_singleton")]
        verbose_name = "rollout policy"
        verbose_name_plural = "rollout policy"

    def __str__(self) -> str:
        return f"Rollout policy ({self.mode})"


class TenantRollout(BaseModel):
    """A tenant's place in the rollout: override, pilot membership, canary-only pilot.

    This is the one per-tenant webchat switch (it replaced `Tenant.webchat_enabled`, whose
    False values became `override=off`).
    """

    tenant = models.OneToOneField(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="rollout", primary_key=True
    )
    override = models.CharField(
        max_length=5, choices=Override.choices, default=Override.NONE, blank=True
    )
    in_pilot = models.BooleanField(default=False, db_index=True)
    canary_only = models.BooleanField(
        default=False, help_text="In the pilot, serve only the tenant's canary sites."
    )
    # Gates measure the current stage: samples before the last stage change don't count.
    gate_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "tenant rollout"

    def __str__(self) -> str:
        return f"Rollout of tenant {self.tenant_id}"


class AuditAction(models.TextChoices):
    POLICY_UPDATE = "policy_update", "Policy changed"
    KILL_SWITCH = "kill_switch", "Kill switch"
    TENANT_UPDATE = "tenant_update", "Tenant changed"
    PROMOTE = "promote", "Promoted"
    DEMOTE = "demote", "Demoted"
    AUTO_DEMOTE = "auto_demote", "Auto-demoted by SLO gates"
    SITE_CANARY = "site_canary", "Site canary flag"
    SCHEDULE_CREATE = "schedule_create", "Change scheduled"
    SCHEDULE_CANCEL = "schedule_cancel", "Scheduled change cancelled"
    SCHEDULE_FAIL = "schedule_fail", "Scheduled change failed"
    MIGRATED = "migrated", "Migrated"


class AuditEntry(BaseModel):
    """One change to the rollout: who, when, before/after, why, and the gate metrics then."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=20, choices=AuditAction.choices)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    site = models.ForeignKey(
        "webchat.WebChatSite", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scheduled_change = models.ForeignKey(
        "rollout.ScheduledChange",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_entries",
    )
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField()
    metrics = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="rollout_audit_reason_required")
        ]
        indexes = [models.Index(fields=["tenant", "-created_at"])]
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor_label}"

    @property
    def changed(self) -> list[tuple[str, object, object]]:
        """(field, before, after) for every field whose value changed."""
        keys = list(dict.fromkeys([*self.before, *self.after]))
        return [
            (key, self.before.get(key), self.after.get(key))
            for key in keys
            if self.before.get(key) != self.after.get(key)
        ]


class ScheduleTarget(models.TextChoices):
    POLICY = "policy", "Policy"
    TENANT = "tenant", "Tenant"


class ScheduleStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


class ScheduledChange(BaseModel):
    """A policy or tenant change to apply at `run_at` (by the beat task)."""

    target = models.CharField(max_length=10, choices=ScheduleTarget.choices)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    changes = models.JSONField(default=dict)
    override_gates = models.BooleanField(default=False)
    run_at = models.DateTimeField()
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150)
    status = models.CharField(
        max_length=10, choices=ScheduleStatus.choices, default=ScheduleStatus.PENDING
    )
    applied_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(target="policy", tenant__isnull=True)
                | Q(target="tenant", tenant__isnull=False),
                name="rollout_schedule_tenant_iff_tenant_target",
            )
        ]
        indexes = [models.Index(fields=["status", "run_at"])]
        ordering = ["run_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_target_display()} change at {self.run_at:%Y-%m-%d %H:%M}"


class GateStatus(models.TextChoices):
    PASS = "pass", "Passing"
    WARN = "warn", "Below target"
    FAIL = "fail", "Failing"
    INSUFFICIENT = "insufficient", "Insufficient data"


class GateEvaluation(BaseModel):
    """One evaluation of a tenant's SLO gates (kept for a week, see the beat task)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=12, choices=GateStatus.choices)
    samples = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    result = models.JSONField(default=dict)
    action = models.CharField(max_length=40, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-id"])]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.status} for tenant {self.tenant_id}"
