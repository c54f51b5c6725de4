"""Where a tenant's data retention got to (`Tenant.retention_marks`, tenants.retention)."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from support.retention import support_data_purge
from tenants.models import Tenant
from tenants.retention import RESWEEP, RetentionMarks, Window
from tests.factories import MessageFactory
from webchat.rollups import visitor_data_purge

pytestmark = pytest.mark.django_db


def test_the_webchat_and_support_runs_of_a_tenant_keep_each_others_marks(tenant):
    """The two purges of a tenant run as separate tasks, perhaps at once, each from the
    tenant row as it read it: each writes its own kinds only."""
    webchat_copy, support_copy = Tenant.objects.get(pk=tenant.pk), Tenant.objects.get(pk=tenant.pk)
    visitor_data_purge(tenant=webchat_copy)
    support_data_purge(tenant=support_copy)
    assert set(Tenant.objects.get(pk=tenant.pk).retention_marks) == {
        "sessions",
        "contacts",
        "messages",
        "events",
        "webhook_deliveries",
        "conversation_links",
        "approval_items",
    }
    assert set(support_copy.retention_marks) == {
        "webhook_deliveries",
        "conversation_links",
        "approval_items",
    }


def test_a_run_with_no_mark_or_an_unreadable_one_starts_from_the_first_row(tenant):
    old = MessageFactory(conversation__tenant=tenant, text="jo@example.com")
    old.__class__.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
    Tenant.objects.filter(pk=tenant.pk).update(
        retention_marks={"messages": {"done_before": "not a time"}, "sessions": "?"}
    )
    tenant.refresh_from_db()
    marks = RetentionMarks(tenant=tenant)
    assert marks.window("messages") == Window(None, marks.cutoff)
    assert marks.window("sessions") == Window(None, marks.cutoff)
    assert marks.window("events") == Window(None, marks.cutoff)
    assert visitor_data_purge(tenant=tenant)["messages"] == 1
    done_before = datetime.fromisoformat(tenant.retention_marks["messages"]["done_before"])
    assert done_before <= timezone.now() - timedelta(days=tenant.pii_retention_days)


def test_the_window_runs_from_the_mark_to_the_cutoff_and_sweeps_daily_when_asked(tenant):
    now = timezone.now()
    mark = now - timedelta(days=tenant.pii_retention_days, hours=1)
    swept = {"done_before": mark.isoformat(), "swept_at": (now - timedelta(hours=2)).isoformat()}
    tenant.retention_marks = {"messages": {"done_before": mark.isoformat()}, "contacts": swept}
    marks = RetentionMarks(tenant=tenant, now=now)
    assert marks.window("messages") == Window(mark, marks.cutoff)
    assert marks.window("contacts", resweep=True) == Window(mark, marks.cutoff)
    swept["swept_at"] = (now - RESWEEP).isoformat()
    assert marks.window("contacts", resweep=True) == Window(None, marks.cutoff)
    # a longer retention period puts the cutoff behind the mark: nothing to do
    behind = RetentionMarks(tenant=tenant, now=now - timedelta(hours=2))
    assert behind.window("messages") is None
