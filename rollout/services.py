"""Every write to the rollout: policy, tenants, sites' canary flag, schedules, gates.

Each service validates, applies the change under a row lock, writes an `AuditEntry` (actor,
before/after, required reason, a snapshot of the gate metrics) in the same transaction, and
bumps the decision-cache generation (now and again on commit) so every web instance
decides afresh on its next request. Demotions and kill-switch changes alert operators
after the commit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.exceptions import ApplicationError
from rollout.alerts import alert_send
from rollout.exceptions import ChangeInvalid, GatesNotPassing, NoChange, ReasonRequired
from rollout.gates import GateResult, gate_result_for_tenant, gate_results, overall_metrics
from rollout.models import (
    AuditAction,
    AuditEntry,
    GateEvaluation,
    GateStatus,
    Mode,
    Override,
    RolloutPolicy,
    ScheduledChange,
    ScheduleStatus,
    ScheduleTarget,
    Stage,
    TenantRollout,
)
from rollout.selectors import (
    PolicySnapshot,
    TenantState,
    decide,
    generation_bump,
    mode_rank,
    policy_read,
    stage_rank,
    tenant_stage,
    tenant_state_get,
)
from tenants.models import PlanTier, Tenant
from webchat.models import WebChatSite

log = structlog.get_logger(__name__)

POLICY_FIELDS = ("mode", "webchat_enabled", "allowed_tiers")
TENANT_FIELDS = ("override", "in_pilot", "canary_only")
DEMOTION_TARGETS = (Stage.OFF, Stage.CANARY, Stage.PILOT)
# What a demotion to each stage sets: held at pilot so a later widening of the policy
# cannot silently undo the demotion.
DEMOTION_MOVES = {
    Stage.OFF: {"override": Override.FORCE_OFF},
    Stage.CANARY: {"override": Override.HOLD_PILOT, "in_pilot": True, "canary_only": True},
    Stage.PILOT: {"override": Override.HOLD_PILOT, "in_pilot": True, "canary_only": False},
}
SNAPSHOT_MAX_TENANTS = 200
SYSTEM_GATES = "system: SLO gates"


# --- helpers ---------------------------------------------------------------------------------


def _label(actor, actor_label: str | None, scheduled_change: ScheduledChange | None) -> str:
    label = actor_label or (actor.get_username() if actor is not None else "system")
    if scheduled_change is not None:
        label = f"{label} (scheduled #{scheduled_change.pk})"
    return label[:150]


def _reason_clean(reason: str | None) -> str:
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise ReasonRequired()
    return reason[:2000]


def _decisions_changed() -> None:
    """Stale every cached decision now and, for readers racing the commit, after it."""
    generation_bump()
    transaction.on_commit(generation_bump)


def _alert_after_commit(text: str) -> None:
    transaction.on_commit(lambda: alert_send(text=text))


def policy_changes_clean(changes: dict) -> dict:
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise ChangeInvalid(f"Unknown policy fields: {', '.join(sorted(unknown))}.")
    clean: dict = {}
    if "mode" in changes:
        if changes["mode"] not in Mode.values:
            raise ChangeInvalid(f"Unknown mode {changes['mode']!r}; use off, pilot, tiered or ga.")
        clean["mode"] = str(changes["mode"])
    if "webchat_enabled" in changes:
        if not isinstance(changes["webchat_enabled"], bool):
            raise ChangeInvalid("webchat_enabled must be true or false.")
        clean["webchat_enabled"] = changes["webchat_enabled"]
    if "allowed_tiers" in changes:
        tiers = list(changes["allowed_tiers"] or [])
        bad = [t for t in tiers if t not in PlanTier.values]
        if bad:
            raise ChangeInvalid(f"Unknown plan tiers: {', '.join(map(str, bad))}.")
        clean["allowed_tiers"] = sorted(set(tiers))
    return clean


def tenant_changes_clean(changes: dict) -> dict:
    unknown = set(changes) - set(TENANT_FIELDS)
    if unknown:
        raise ChangeInvalid(f"Unknown tenant rollout fields: {', '.join(sorted(unknown))}.")
    clean: dict = {}
    if "override" in changes:
        value = changes["override"] or ""
        if value not in Override.values:
            raise ChangeInvalid(f"Unknown override {value!r}; use '', on, off or pilot.")
        clean["override"] = str(value)
    for name in ("in_pilot", "canary_only"):
        if name in changes:
            if not isinstance(changes[name], bool):
                raise ChangeInvalid(f"{name} must be true or false.")
            clean[name] = changes[name]
    return clean


def _snapshot_all(results: dict[int, GateResult]) -> dict:
    busiest = sorted(results.values(), key=lambda r: -r.samples)[:SNAPSHOT_MAX_TENANTS]
    return {
        "scope": "all",
        "overall": overall_metrics(results),
        "tenants": {
            str(r.tenant_id): {
                "status": r.status,
                "samples": r.samples,
                "values": r.metrics.values(),
            }
            for r in busiest
        },
    }


def _snapshot_tenant(result: GateResult) -> dict:
    return {"scope": "tenant", **result.as_dict()}


# --- policy ----------------------------------------------------------------------------------


def _policy_locked() -> RolloutPolicy:
    default = PolicySnapshot.default()
    policy, _ = RolloutPolicy.objects.select_for_update().get_or_create(
        pk=1,
        defaults={
            "mode": default.mode,
            "webchat_enabled": default.webchat_enabled,
            "allowed_tiers": list(default.allowed_tiers),
        },
    )
    return policy


def _is_gated_widening(before: PolicySnapshot, after: PolicySnapshot) -> bool:
    """Widening beyond the pilot (to tiered or ga, or more tiers) needs passing gates."""
    if after.mode not in (Mode.TIERED, Mode.GA):
        return False
    if mode_rank(after.mode) > mode_rank(before.mode):
        return True
    return after.mode == Mode.TIERED and bool(set(after.allowed_tiers) - set(before.allowed_tiers))


def widening_blockers(
    *, before: PolicySnapshot, results: dict[int, GateResult]
) -> tuple[list[str], int]:
    """(problems, passing): tenants exposed now whose gates warn or fail, and how many pass."""
    tenants = Tenant.objects.filter(pk__in=list(results)).select_related("rollout")
    problems, passing = [], 0
    for tenant in tenants:
        state = TenantState.of(tenant, getattr(tenant, "rollout", None))
        if tenant_stage(before, state) == Stage.OFF:
            continue
        result = results[tenant.pk]
        if result.status in (GateStatus.WARN, GateStatus.FAIL):
            problems.append(f"{tenant.name}: {result.summary()}")
        elif result.status == GateStatus.PASS:
            passing += 1
    return problems, passing


def policy_update(
    *,
    actor,
    reason: str,
    override_gates: bool = False,
    actor_label: str | None = None,
    scheduled_change: ScheduledChange | None = None,
    now: datetime | None = None,
    **changes,
) -> RolloutPolicy:
    """Change the global policy. Widening beyond the pilot is refused unless every exposed
    tenant with enough data passes its gates and at least one passes (or `override_gates`)."""
    reason = _reason_clean(reason)
    changes = policy_changes_clean(changes)
    if not changes:
        raise NoChange()
    results = gate_results(now=now)
    with transaction.atomic():
        policy = _policy_locked()
        before = PolicySnapshot.of(policy)
        for name, value in changes.items():
            setattr(policy, name, value)
        after = PolicySnapshot.of(policy)
        if after == before:
            raise NoChange()
        after_record = after.as_dict()
        if _is_gated_widening(before, after):
            problems, passing = widening_blockers(before=before, results=results)
            if (problems or not passing) and not override_gates:
                detail = "; ".join(problems) if problems else "no exposed tenant passes yet"
                raise GatesNotPassing(
                    f"Widening to {after.mode} is on hold until the SLO gates pass: {detail}."
                )
            if problems or not passing:
                after_record["gates_overridden"] = True
        policy.save()
        only_kill = before.webchat_enabled != after.webchat_enabled and (
            before.mode,
            before.allowed_tiers,
        ) == (after.mode, after.allowed_tiers)
        label = _label(actor, actor_label, scheduled_change)
        AuditEntry.objects.create(
            actor=actor,
            actor_label=label,
            action=AuditAction.KILL_SWITCH if only_kill else AuditAction.POLICY_UPDATE,
            before=before.as_dict(),
            after=after_record,
            reason=reason,
            metrics=_snapshot_all(results),
            scheduled_change=scheduled_change,
        )
        _decisions_changed()
        if before.webchat_enabled != after.webchat_enabled:
            state = "ENABLED again" if after.webchat_enabled else "KILLED (kill switch on)"
            _alert_after_commit(f"ReplyBase webchat {state} by {label}. Reason: {reason}")
    log.info("rollout.policy_updated", actor=label, before=before.as_dict(), after=after_record)
    return policy


def kill_switch_set(*, actor, reason: str, enabled: bool) -> RolloutPolicy:
    """Turn every webchat request off (enabled=False) or back on."""
    return policy_update(actor=actor, reason=reason, webchat_enabled=enabled)


# --- tenants ---------------------------------------------------------------------------------


def tenant_rollout_update(
    *,
    tenant: Tenant,
    actor,
    reason: str,
    action: str = AuditAction.TENANT_UPDATE,
    gate: GateResult | None = None,
    actor_label: str | None = None,
    scheduled_change: ScheduledChange | None = None,
    now: datetime | None = None,
    expect_stage: Stage | None = None,
    planned_at: datetime | None = None,
    **changes,
) -> TenantRollout:
    """Change a tenant's override, pilot membership or canary-only flag. With
    `expect_stage`, the stage the caller decided from (a promotion, a demotion): refused
    when the tenant is no longer at it once its row is locked (someone else moved it
    while the gates were measured). `planned_at`, when a scheduled change was planned: it
    does not widen a tenant that was demoted after that (by the gates or an operator)."""
    reason = _reason_clean(reason)
    changes = tenant_changes_clean(changes)
    if not changes:
        raise NoChange()
    now = now or timezone.now()
    policy = policy_read()
    gate = gate or gate_result_for_tenant(tenant_id=tenant.pk, now=now)
    with transaction.atomic():
        rollout, _ = TenantRollout.objects.select_for_update().get_or_create(tenant=tenant)
        before = TenantState.of(tenant, rollout)
        if expect_stage is not None and tenant_stage(policy, before) != expect_stage:
            raise ChangeInvalid(
                f"{tenant.name} moved to stage {tenant_stage(policy, before).label.lower()} "
                f"while this {action_label(action)} was being decided: look again."
            )
        for name, value in changes.items():
            setattr(rollout, name, value)
        after = TenantState.of(tenant, rollout)
        if after == before:
            raise NoChange()
        stage_before, stage_after = tenant_stage(policy, before), tenant_stage(policy, after)
        if planned_at is not None and stage_rank(stage_after) > stage_rank(stage_before):
            demoted = _narrowed_since(tenant, planned_at)
            if demoted is not None:
                raise ChangeInvalid(
                    f"{tenant.name} was demoted ({demoted.reason}) at "
                    f"{demoted.created_at:%Y-%m-%d %H:%M} UTC, after this change was "
                    f"planned: it would widen {stage_before} → {stage_after}. Schedule it "
                    "again if it is still wanted."
                )
        if stage_before != stage_after:
            rollout.gate_since = now  # gates measure the new stage from here on
        rollout.save()
        label = _label(actor, actor_label, scheduled_change)
        AuditEntry.objects.create(
            actor=actor,
            actor_label=label,
            action=action,
            tenant=tenant,
            before={**before.as_dict(), "stage": str(stage_before)},
            after={**after.as_dict(), "stage": str(stage_after)},
            reason=reason,
            metrics=_snapshot_tenant(gate),
            scheduled_change=scheduled_change,
        )
        _decisions_changed()
        if action in (AuditAction.DEMOTE, AuditAction.AUTO_DEMOTE):
            how = "auto-demoted" if action == AuditAction.AUTO_DEMOTE else "demoted"
            _alert_after_commit(
                f"ReplyBase webchat: tenant {tenant.name} ({tenant.slug}) {how} "
                f"{stage_before} → {stage_after} by {label}. Gates: {gate.summary()}. "
                f"Reason: {reason}"
            )
    log.info(
        "rollout.tenant_updated",
        tenant_id=tenant.pk,
        action=str(action),
        stage_before=str(stage_before),
        stage_after=str(stage_after),
        actor=label,
    )
    return rollout


def _narrowed_since(tenant: Tenant, since: datetime) -> AuditEntry | None:
    """The latest change after `since` that narrowed the tenant's stage: a demotion (by
    the gates or an operator), a force-off or a hold from the tenant page."""
    for entry in AuditEntry.objects.filter(tenant=tenant, created_at__gt=since).order_by(
        "-created_at", "-id"
    ):
        before, after = (entry.before or {}).get("stage"), (entry.after or {}).get("stage")
        known = before in Stage.values and after in Stage.values
        if known and stage_rank(after) < stage_rank(before):
            return entry
    return None


def action_label(action: str) -> str:
    """'promotion', 'demotion', ... for messages."""
    return {
        AuditAction.PROMOTE: "promotion",
        AuditAction.DEMOTE: "demotion",
        AuditAction.AUTO_DEMOTE: "automatic demotion",
    }.get(action, "change")


def tenant_override_set(*, tenant: Tenant, actor, reason: str, override: str) -> TenantRollout:
    """Force a tenant on or off, hold it at the pilot, or let it follow the policy ('')."""
    return tenant_rollout_update(tenant=tenant, actor=actor, reason=reason, override=override)


def tenant_promote(
    *, tenant: Tenant, actor, reason: str, now: datetime | None = None
) -> TenantRollout:
    """One step wider, only when the gates pass: canary sites → all sites → full."""
    policy = policy_read()
    state = tenant_state_get(tenant=tenant)
    stage = tenant_stage(policy, state)
    if stage not in (Stage.CANARY, Stage.PILOT):
        raise ChangeInvalid(
            f"{tenant.name} is at stage {stage.label.lower()}: only a pilot tenant is promoted. "
            "Add it to the pilot list (or change its override) instead."
        )
    gate = gate_result_for_tenant(tenant_id=tenant.pk, now=now)
    if gate.status != GateStatus.PASS:
        raise GatesNotPassing(f"{tenant.name} cannot be promoted yet: {gate.summary()}.")
    if stage == Stage.CANARY:
        changes: dict = {"canary_only": False}
    elif (
        state.override == Override.HOLD_PILOT
        and tenant_stage(policy, replace(state, override=Override.NONE)) == Stage.FULL
    ):
        changes = {"override": Override.NONE}
    else:
        changes = {"override": Override.FORCE_ON}
    return tenant_rollout_update(
        tenant=tenant,
        actor=actor,
        reason=reason,
        action=AuditAction.PROMOTE,
        gate=gate,
        now=now,
        expect_stage=stage,
        **changes,
    )


def tenant_demote(
    *,
    tenant: Tenant,
    actor,
    reason: str,
    target: str | None = None,
    automatic: bool = False,
    gate: GateResult | None = None,
    now: datetime | None = None,
) -> TenantRollout:
    """Narrow a tenant to `target` (off | canary | pilot; default ROLLOUT_DEMOTION_TARGET).

    A tenant already at or below the target goes off, so a demotion always narrows."""
    target = target or settings.ROLLOUT_DEMOTION_TARGET
    if target not in DEMOTION_TARGETS:
        raise ChangeInvalid(f"Unknown demotion target {target!r}; use off, canary or pilot.")
    stage = tenant_stage(policy_read(), tenant_state_get(tenant=tenant))
    if stage == Stage.OFF:
        raise NoChange(f"{tenant.name} is already off.")
    if stage_rank(stage) <= stage_rank(target):
        target = Stage.OFF
    return tenant_rollout_update(
        tenant=tenant,
        actor=actor,
        reason=reason,
        action=AuditAction.AUTO_DEMOTE if automatic else AuditAction.DEMOTE,
        gate=gate,
        actor_label=SYSTEM_GATES if automatic else None,
        now=now,
        expect_stage=stage,
        **DEMOTION_MOVES[Stage(target)],
    )


def site_canary_set(*, site: WebChatSite, actor, reason: str, is_canary: bool) -> WebChatSite:
    """Mark a site as a low-risk canary (served to canary-only pilot tenants).

    The only way the flag changes: the webchat admin and the tenant dashboard show it
    read-only. `before` is the locked row's value, not the caller's copy of the site."""
    reason = _reason_clean(reason)
    gate = gate_result_for_tenant(tenant_id=site.tenant_id)
    with transaction.atomic():
        site = WebChatSite.objects.select_for_update().get(pk=site.pk, tenant_id=site.tenant_id)
        if site.is_canary == is_canary:
            raise NoChange()
        WebChatSite.objects.filter(pk=site.pk, tenant_id=site.tenant_id).update(
            is_canary=is_canary, updated_at=timezone.now()
        )
        AuditEntry.objects.create(
            actor=actor,
            actor_label=_label(actor, None, None),
            action=AuditAction.SITE_CANARY,
            tenant_id=site.tenant_id,
            site=site,
            before={"site": site.name, "is_canary": site.is_canary},
            after={"site": site.name, "is_canary": is_canary},
            reason=reason,
            metrics=_snapshot_tenant(gate),
        )
        _decisions_changed()
    site.is_canary = is_canary
    return site


# --- scheduled changes -----------------------------------------------------------------------


def scheduled_change_create(
    *,
    actor,
    reason: str,
    run_at: datetime,
    target: str,
    changes: dict,
    tenant: Tenant | None = None,
    override_gates: bool = False,
    now: datetime | None = None,
) -> ScheduledChange:
    """Record a policy or tenant change for the beat task to apply at `run_at`."""
    reason = _reason_clean(reason)
    now = now or timezone.now()
    if run_at <= now:
        raise ChangeInvalid("A scheduled change needs a time in the future.")
    if target == ScheduleTarget.POLICY:
        changes, tenant = policy_changes_clean(changes), None
        snapshot = _snapshot_all(gate_results(now=now))
    elif target == ScheduleTarget.TENANT and tenant is not None:
        changes = tenant_changes_clean(changes)
        snapshot = _snapshot_tenant(gate_result_for_tenant(tenant_id=tenant.pk, now=now))
    else:
        raise ChangeInvalid("Schedule a policy change, or a tenant change with its tenant.")
    if not changes:
        raise NoChange()
    with transaction.atomic():
        change = ScheduledChange.objects.create(
            target=target,
            tenant=tenant,
            changes=changes,
            override_gates=override_gates,
            run_at=run_at,
            reason=reason,
            created_by=actor,
            created_by_label=_label(actor, None, None),
        )
        AuditEntry.objects.create(
            actor=actor,
            actor_label=change.created_by_label,
            action=AuditAction.SCHEDULE_CREATE,
            tenant=tenant,
            before={},
            after={
                "target": target,
                "run_at": run_at.isoformat(timespec="minutes"),
                "changes": changes,
            },
            reason=reason,
            metrics=snapshot,
            scheduled_change=change,
        )
    return change


def scheduled_change_cancel(*, change: ScheduledChange, actor, reason: str) -> ScheduledChange:
    reason = _reason_clean(reason)
    with transaction.atomic():
        change = ScheduledChange.objects.select_for_update().get(pk=change.pk)
        if change.status != ScheduleStatus.PENDING:
            raise ChangeInvalid(f"That change is already {change.get_status_display().lower()}.")
        change.status = ScheduleStatus.CANCELLED
        change.save(update_fields=["status", "updated_at"])
        AuditEntry.objects.create(
            actor=actor,
            actor_label=_label(actor, None, None),
            action=AuditAction.SCHEDULE_CANCEL,
            tenant=change.tenant,
            before={"status": ScheduleStatus.PENDING, "changes": change.changes},
            after={"status": ScheduleStatus.CANCELLED},
            reason=reason,
            scheduled_change=change,
        )
    return change


def _scheduled_apply(change: ScheduledChange, now: datetime) -> None:
    common = {
        "actor": change.created_by,
        "actor_label": change.created_by_label,
        "reason": change.reason,
        "scheduled_change": change,
        "now": now,
    }
    if change.target == ScheduleTarget.POLICY:
        policy_update(override_gates=change.override_gates, **common, **change.changes)
    else:
        tenant_rollout_update(
            tenant=change.tenant, planned_at=change.created_at, **common, **change.changes
        )


def scheduled_change_apply_due(*, now: datetime | None = None) -> int:
    """Apply every pending change whose time has come (oldest first); returns how many ran.

    A change that would do nothing is marked applied; one the gates or validation refuse is
    marked failed (audited and alerted). Several schedulers never apply one change twice."""
    now = now or timezone.now()
    due = list(
        ScheduledChange.objects.filter(status=ScheduleStatus.PENDING, run_at__lte=now)
        .order_by("run_at", "id")
        .values_list("id", flat=True)
    )
    done = 0
    for change_id in due:
        with transaction.atomic():
            change = (
                ScheduledChange.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("tenant", "created_by")
                .filter(pk=change_id, status=ScheduleStatus.PENDING)
                .first()
            )
            if change is None:
                continue
            change.status, change.error = ScheduleStatus.APPLIED, ""
            try:
                with transaction.atomic():
                    _scheduled_apply(change, now)
            except NoChange:
                change.error = "Already in effect when it came due; nothing changed."
            except ApplicationError as exc:
                change.status, change.error = ScheduleStatus.FAILED, exc.message
                AuditEntry.objects.create(
                    actor=None,
                    actor_label="system: scheduler",
                    action=AuditAction.SCHEDULE_FAIL,
                    tenant=change.tenant,
                    before={"status": ScheduleStatus.PENDING, "changes": change.changes},
                    after={"status": ScheduleStatus.FAILED, "error": exc.message},
                    reason=f"Scheduled change #{change.pk} could not be applied.",
                    scheduled_change=change,
                )
                _alert_after_commit(
                    f"ReplyBase rollout: scheduled change #{change.pk} failed: {exc.message}"
                )
            change.applied_at = now
            change.save(update_fields=["status", "error", "applied_at", "updated_at"])
            done += 1
    return done


# --- gates -----------------------------------------------------------------------------------


def gates_evaluate(*, now: datetime | None = None, demote: bool = True) -> list[GateResult]:
    """Evaluate every active tenant's gates, store the results, and demote each tenant whose
    gates fail with enough samples (to ROLLOUT_DEMOTION_TARGET; audited and alerted)."""
    now = now or timezone.now()
    results = gate_results(now=now)
    policy = policy_read()
    tenants = {
        t.pk: t for t in Tenant.objects.filter(pk__in=list(results)).select_related("rollout")
    }
    evaluations = []
    for tenant_id, result in results.items():
        tenant = tenants.get(tenant_id)
        if tenant is None:
            continue
        action = ""
        stage = tenant_stage(policy, TenantState.of(tenant, getattr(tenant, "rollout", None)))
        if demote and result.status == GateStatus.FAIL and stage != Stage.OFF:
            try:
                tenant_demote(
                    tenant=tenant,
                    actor=None,
                    reason=f"Automatic demotion: SLO gates failed ({result.summary()}).",
                    automatic=True,
                    gate=result,
                    now=now,
                )
                action = f"demoted from {stage}"
            except ApplicationError as exc:
                log.warning("rollout.auto_demote_failed", tenant_id=tenant_id, error=exc.message)
        evaluations.append(
            GateEvaluation(
                tenant=tenant,
                status=result.status,
                samples=result.samples,
                window_start=result.window_start,
                window_end=result.window_end,
                result=result.as_dict(),
                action=action,
            )
        )
    GateEvaluation.objects.bulk_create(evaluations)
    cutoff = now - timedelta(days=settings.ROLLOUT_GATE_HISTORY_DAYS)
    GateEvaluation.objects.filter(created_at__lt=cutoff).delete()
    return list(results.values())


def gate_evaluate_tenant(*, tenant: Tenant, now: datetime | None = None) -> GateEvaluation:
    """Evaluate and store one tenant's gates now (no demotion: that is the beat task's job)."""
    result = gate_result_for_tenant(tenant_id=tenant.pk, now=now)
    return GateEvaluation.objects.create(
        tenant=tenant,
        status=result.status,
        samples=result.samples,
        window_start=result.window_start,
        window_end=result.window_end,
        result=result.as_dict(),
    )


# --- demo data -------------------------------------------------------------------------------

DEMO_REASON = "Demo data (seed_demo): keep the demo tenant's widget working."


def rollout_demo_ensure(*, tenant: Tenant) -> None:
    """Leave `tenant` allowed (idempotent). A fresh installation (no other tenant) starts
    its rollout in pilot mode with the tenant in the pilot list; one with other tenants
    keeps its mode (an unsaved policy follows ROLLOUT_DEFAULT_MODE), so seeding a demo
    there never turns another tenant off."""
    policy = policy_read()
    changes: dict = {}
    fresh = not policy.saved and not Tenant.objects.exclude(pk=tenant.pk).exists()
    if fresh or policy.mode == Mode.OFF:
        changes["mode"] = Mode.PILOT
    if not policy.webchat_enabled:
        changes["webchat_enabled"] = True
    if changes:
        policy = PolicySnapshot.of(
            policy_update(actor=None, actor_label="seed_demo", reason=DEMO_REASON, **changes)
        )
    state = tenant_state_get(tenant=tenant)
    if not decide(policy, state, site_is_canary=False).allowed:
        wanted = {"override": Override.NONE, "in_pilot": True, "canary_only": False}
        tenant_rollout_update(
            tenant=tenant,
            actor=None,
            actor_label="seed_demo",
            reason=DEMO_REASON,
            **{k: v for k, v in wanted.items() if getattr(state, k) != v},
        )
