"""Prometheus gauges for the rollout state and SLO gates, read from the database at scrape
time (so every web instance reports the same truth, whoever changed it).

Registered in `RolloutConfig.ready` through `core.metrics.register_scrape_time_collector`,
so they are exposed in single-process and gunicorn multi-process mode alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rollout.models import STAGE_ORDER, GateStatus, Mode, ScheduledChange, ScheduleStatus
from rollout.selectors import TenantState, gate_latest_by_tenant, policy_read, tenant_stage
from tenants.models import PlanTier, Tenant

log = structlog.get_logger(__name__)


class RolloutCollector(Collector):
    def describe(self) -> list:
        return []  # no collect() at registration time (the database may not be ready)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            families = list(self._families())
        except Exception as exc:  # a scrape must not fail because the database is away
            log.warning("rollout.metrics_unavailable", error=f"{type(exc).__name__}: {exc}")
            return
        yield from families

    def _families(self) -> Iterator[GaugeMetricFamily]:
        policy = policy_read()
        enabled = GaugeMetricFamily(
            "replybase_rollout_webchat_enabled",
            "1 while webchat may serve; 0 when the global kill switch is on",
            value=int(policy.webchat_enabled),
        )
        mode = GaugeMetricFamily(
            "replybase_rollout_mode", "Current rollout mode (1 for the active one)", labels=["mode"]
        )
        for value in Mode.values:
            mode.add_metric([value], int(policy.mode == value))
        tiers = GaugeMetricFamily(
            "replybase_rollout_tier_enabled",
            "Plan tiers enabled in tiered mode",
            labels=["tier"],
        )
        for tier in PlanTier.values:
            tiers.add_metric([tier], int(tier in policy.allowed_tiers))

        tenants = list(Tenant.objects.select_related("rollout"))
        gates = gate_latest_by_tenant()
        by_stage = dict.fromkeys(STAGE_ORDER, 0)
        stage = GaugeMetricFamily(
            "replybase_rollout_tenant_stage",
            "Tenant rollout stage (1 for the current one), for tenants in the rollout",
            labels=["tenant", "stage"],
        )
        status = GaugeMetricFamily(
            "replybase_rollout_gate_status",
            "Latest SLO gate status per tenant (1 for the current one)",
            labels=["tenant", "status"],
        )
        samples = GaugeMetricFamily(
            "replybase_rollout_gate_samples", "Messages in the gate window", labels=["tenant"]
        )
        values = GaugeMetricFamily(
            "replybase_rollout_gate_value", "Latest gate metric values", labels=["tenant", "metric"]
        )
        evaluated = GaugeMetricFamily(
            "replybase_rollout_gate_evaluated_timestamp_seconds",
            "When the tenant's gates were last evaluated",
            labels=["tenant"],
        )
        for tenant in tenants:
            rollout = getattr(tenant, "rollout", None)
            current = tenant_stage(policy, TenantState.of(tenant, rollout))
            by_stage[current] += 1
            gate = gates.get(tenant.pk)
            if rollout is None and gate is None:
                continue
            for name in STAGE_ORDER:
                stage.add_metric([tenant.slug, name], int(name == current))
            if gate is None:
                continue
            for name in GateStatus.values:
                status.add_metric([tenant.slug, name], int(gate.status == name))
            samples.add_metric([tenant.slug], gate.samples)
            evaluated.add_metric([tenant.slug], gate.created_at.timestamp())
            for metric, value in (gate.result.get("values") or {}).items():
                if value is not None:
                    values.add_metric([tenant.slug, metric], float(value))
        counts = GaugeMetricFamily(
            "replybase_rollout_tenants", "Tenants per rollout stage", labels=["stage"]
        )
        for name, count in by_stage.items():
            counts.add_metric([name], count)
        pending = GaugeMetricFamily(
            "replybase_rollout_scheduled_changes_pending",
            "Scheduled rollout changes not applied yet",
            value=ScheduledChange.objects.filter(status=ScheduleStatus.PENDING).count(),
        )
        yield from (
            enabled,
            mode,
            tiers,
            stage,
            counts,
            status,
            samples,
            values,
            evaluated,
            pending,
        )


def register() -> None:
    from core.metrics import register_scrape_time_collector

    register_scrape_time_collector(RolloutCollector())
