"""SLA: level boundaries, breach detection, the monitor's breach alerts, the tiles."""

from datetime import timedelta

import pytest
from django.utils import timezone

from support import selectors, sla
from support.models import ChatwootStatus
from support.monitor import monitor_run
from tests.factories.support import ChatwootConversationLinkFactory

M = timedelta(minutes=1)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("remaining", "level"),
    [
        (30 * M, "normal"),
        (15 * M + S, "normal"),
        (15 * M, "warning"),
        (10 * M, "warning"),
        (5 * M, "warning"),
        (5 * M - S, "urgent"),
        (S, "urgent"),
        (timedelta(0), "urgent"),
        (-S, "breach"),
        (-60 * M, "breach"),
    ],
)
def test_levels_by_time_remaining(remaining, level):
    assert sla.level_for_remaining(remaining) == level


def _link(connection, *, waited, responded_after=None, status=ChatwootStatus.OPEN, customer=True):
    now = timezone.now()
    first = now - waited if customer else None
    return ChatwootConversationLinkFactory(
        connection=connection,
        status=status,
        first_customer_message_at=first,
        waiting_since=first if responded_after is None else None,
        first_response_at=(first + responded_after) if responded_after is not None else None,
    )


def test_breach_needs_open_a_customer_message_and_a_late_first_response(connection):
    now = timezone.now()
    assert sla.is_breached(_link(connection, waited=31 * M), 30, now)
    assert not sla.is_breached(_link(connection, waited=29 * M), 30, now)
    assert not sla.is_breached(_link(connection, waited=45 * M, status="resolved"), 30, now)
    assert not sla.is_breached(_link(connection, waited=45 * M, status="pending"), 30, now)
    assert not sla.is_breached(_link(connection, waited=45 * M, customer=False), 30, now)
    assert not sla.is_breached(_link(connection, waited=45 * M, responded_after=10 * M), 30, now)
    assert sla.is_breached(_link(connection, waited=45 * M, responded_after=40 * M), 30, now)
    assert not sla.is_breached(_link(connection, waited=31 * M), 60, now)  # per-connection SLA


def test_late_first_response_records_the_breach(connection):
    link = _link(connection, waited=40 * M)
    fields = sla.link_responded(link, at=timezone.now(), sla_minutes=30)
    assert "breached_at" in fields and link.breached_at is not None
    on_time = _link(connection, waited=10 * M)
    sla.link_responded(on_time, at=timezone.now(), sla_minutes=30)
    assert on_time.breached_at is None and on_time.first_response_at is not None


def test_monitor_flags_each_breach_once_and_alerts(connection, alert_sink):
    overdue = _link(connection, waited=31 * M)
    _link(connection, waited=10 * M)
    _link(connection, waited=50 * M, status="resolved")
    assert monitor_run()["breaches"] == 1
    overdue.refresh_from_db()
    assert overdue.breached_at is not None
    [text] = alert_sink.texts
    assert "SLA breach" in text and f"#{overdue.chatwoot_conversation_id}" in text
    assert monitor_run()["breaches"] == 0
    assert len(alert_sink.texts) == 1


def test_each_breach_goes_into_the_days_sla_breach_report(connection, settings):
    """The runbook's evidence: artifacts/support/YYYY-MM-DD/ holds the SLA breach reports
    next to chatwoot-health.log, one line per breach flagged by the monitor."""
    from pathlib import Path

    overdue = _link(connection, waited=31 * M)
    overdue.contact_name = "Jane Roe"
    overdue.save(update_fields=["contact_name"])
    _link(connection, waited=10 * M)
    assert monitor_run()["breaches"] == 1
    assert monitor_run()["breaches"] == 0
    [report] = Path(settings.SUPPORT_EVIDENCE_DIR).glob("*/sla-breaches.log")
    assert report.parent.name == timezone.now().strftime("%Y-%m-%d")
    [line] = report.read_text().splitlines()
    assert f"#{overdue.chatwoot_conversation_id}" in line
    assert f"{connection.tenant.slug}/{connection.name}" in line
    assert "Jane Roe" in line and "SLA 30 min" in line


def test_a_name_with_a_line_break_is_still_one_line_of_the_report(connection, settings):
    """The contact's name is what the customer typed into Chatwoot: it cannot add lines
    (a made-up breach, or one hidden) to the evidence."""
    from pathlib import Path

    overdue = _link(connection, waited=31 * M)
    overdue.contact_name = "Jane\n2026-01-01T00:00:00+00:00 acme/x: #1 (Made Up)\r\nRoe"
    overdue.save(update_fields=["contact_name"])
    assert monitor_run()["breaches"] == 1
    [report] = Path(settings.SUPPORT_EVIDENCE_DIR).glob("*/sla-breaches.log")
    [line] = report.read_text().splitlines()
    assert f"#{overdue.chatwoot_conversation_id}" in line and "SLA 30 min" in line


def test_escalations_tile_counts_levels_and_breach_rate(tenant, connection):
    _link(connection, waited=35 * M)  # breach
    _link(connection, waited=27 * M)  # urgent
    _link(connection, waited=20 * M)  # warning
    _link(connection, waited=1 * M)  # normal
    _link(connection, waited=2 * M)  # normal
    _link(connection, waited=40 * M, responded_after=5 * M)  # answered in time
    overview = selectors.sla_overview(tenant=tenant)
    assert overview.counts == {"normal": 2, "warning": 1, "urgent": 1, "breach": 1}
    assert [e.level for e in overview.escalations] == ["breach", "urgent", "warning"]
    assert overview.conversations_7d == 6 and overview.breached_7d == 1
    assert overview.breach_rate == pytest.approx(1 / 6)


def test_other_tenants_conversations_are_not_counted(tenant, other_tenant, connection):
    from tests.factories.support import ChatwootConnectionFactory

    theirs = ChatwootConnectionFactory(tenant=other_tenant)
    _link(theirs, waited=35 * M)
    assert selectors.sla_overview(tenant=tenant).counts["breach"] == 0


def test_a_breach_alert_outlives_a_monitor_run_killed_before_it_was_posted(
    connection, alert_sink, monkeypatch
):
    """The breach is flagged and its alert recorded in one transaction; the post comes
    after. A run killed in between (the task's hard time limit) leaves the alert pending,
    and a later run posts it, once."""
    from datetime import timedelta

    from support import alerts
    from support.models import SupportAlert

    overdue = _link(connection, waited=31 * M)
    real_post = alerts.webhook_text_post

    def killed(**_kwargs):
        raise SystemExit("hard time limit")  # what a killed worker leaves: nothing after

    monkeypatch.setattr(alerts, "webhook_text_post", killed)
    with pytest.raises(SystemExit):
        monitor_run()
    overdue.refresh_from_db()
    assert overdue.breached_at is not None
    [alert] = SupportAlert.objects.filter(kind="sla_breach")
    assert alert.pending and not alert.delivered
    assert alert_sink.texts == []

    monkeypatch.setattr(alerts, "webhook_text_post", real_post)
    assert monitor_run()["breaches"] == 0
    assert alert_sink.texts == []  # a run may still be posting its own fresh alerts
    SupportAlert.objects.filter(pk=alert.pk).update(
        created_at=timezone.now() - alerts.PENDING_GRACE - timedelta(seconds=1)
    )
    assert monitor_run()["breaches"] == 0
    [text] = alert_sink.texts
    assert "SLA breach" in text and f"#{overdue.chatwoot_conversation_id}" in text
    alert.refresh_from_db()
    assert alert.delivered and not alert.pending
    monitor_run()
    assert len(alert_sink.texts) == 1


@pytest.mark.django_db(transaction=True)
def test_a_pending_alert_another_run_is_posting_is_left_to_it(tenant, alert_sink):
    """Two monitor runs at once (the queue backed up): the alert one of them holds
    locked while it posts is skipped by the other, so it is posted once."""
    import threading
    from datetime import timedelta

    from django.db import connections, transaction

    from support import alerts
    from support.models import SupportAlert

    alert = alerts.alert_record(kind="sla_breach", tenant_id=tenant.pk, text="SLA breach: #1")
    SupportAlert.objects.filter(pk=alert.pk).update(
        created_at=timezone.now() - alerts.PENDING_GRACE - timedelta(seconds=1)
    )
    locked, release, posted_meanwhile = threading.Event(), threading.Event(), []

    def other_run():
        try:
            with transaction.atomic():
                SupportAlert.objects.select_for_update().get(pk=alert.pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=other_run)
    holder.start()
    try:
        assert locked.wait(10)
        posted_meanwhile.append(alerts.alerts_pending_deliver())
    finally:
        release.set()
        holder.join(10)
    assert posted_meanwhile == [0] and alert_sink.texts == []
    assert alerts.alerts_pending_deliver() == 1  # the other run let go without posting it
    assert alert_sink.texts == ["[Level 1] SLA breach: #1"]
    assert alerts.alerts_pending_deliver() == 0


def test_tiles_at_the_level_boundaries_with_each_connections_sla(tenant, connection):
    """Levels are counted in the database: the same as `level_at`, at its boundaries, with
    each connection's own SLA; the escalations are the most urgent, by deadline."""
    from tests.factories.support import ChatwootConnectionFactory

    slow = ChatwootConnectionFactory(tenant=tenant, sla_minutes=120)
    now = timezone.now()
    remaining = [30 * M, 15 * M + S, 15 * M, 5 * M, 5 * M - S, timedelta(0), -S, -60 * M]
    expected = dict.fromkeys(["normal", "warning", "urgent", "breach"], 0)
    due = []
    for conn in (connection, slow):
        for left in remaining:
            first = now - conn.sla_minutes * M + left
            ChatwootConversationLinkFactory(
                connection=conn, first_customer_message_at=first, waiting_since=first
            )
            expected[sla.level_for_remaining(left)] += 1
            due.append(now + left)
    _link(connection, waited=90 * M, responded_after=M)  # answered: not waiting
    _link(connection, waited=90 * M, status=ChatwootStatus.RESOLVED)
    overview = selectors.sla_overview(tenant=tenant, now=now, escalations=7)
    assert overview.counts == expected
    soonest = sorted(d for d in due if d - now <= 15 * M)[:7]
    assert [e.due_at for e in overview.escalations] == soonest
    assert [e.level for e in overview.escalations] == [sla.level_at(d, now) for d in soonest]


def test_the_overview_reads_no_more_rows_for_more_waiting_conversations(tenant, connection):
    """Counts come from one aggregate and the escalations are a LIMIT: what the support
    home reads does not grow with the conversations waiting (nor the all-tenant gauges)."""
    from django.db import connection as db

    def measure(**kwargs) -> tuple[int, int]:
        seen = {"queries": 0, "rows": 0}

        def count(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            seen["queries"] += 1
            seen["rows"] += max(context["cursor"].rowcount, 0)
            return result

        with db.execute_wrapper(count):
            selectors.sla_overview(**kwargs)
        return seen["queries"], seen["rows"]

    def wait(n: int) -> None:
        for k in range(n):
            _link(connection, waited=(20 + k % 30) * M)  # warning, urgent or breach

    wait(12)
    few = measure(tenant=tenant), measure(tenant=None, escalations=0)
    wait(40)
    assert (measure(tenant=tenant), measure(tenant=None, escalations=0)) == few
    overview = selectors.sla_overview(tenant=tenant)
    assert sum(overview.counts.values()) == 52 and len(overview.escalations) == 10


def test_the_tiles_count_every_waiting_conversation(tenant, connection):
    """They counted the 5,000 oldest only: with more waiting, the newest (the normal ones)
    went missing from the tiles and the gauges."""
    from support.models import ChatwootConversationLink

    now = timezone.now()
    ChatwootConversationLink.objects.bulk_create(
        [
            ChatwootConversationLink(
                tenant=tenant,
                connection=connection,
                chatwoot_conversation_id=n + 1,
                first_customer_message_at=now - (40 * M if n < 5000 else M),
                waiting_since=now,
            )
            for n in range(6000)
        ]
    )
    assert selectors.sla_overview(tenant=tenant, now=now).counts == {
        "normal": 1000,
        "warning": 0,
        "urgent": 0,
        "breach": 5000,
    }
    assert selectors.sla_overview(tenant=None, now=now, escalations=0).counts["normal"] == 1000
