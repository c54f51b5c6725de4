"""Support-side data retention: Chatwoot payloads, approval texts and contact names past the
tenant's retention period; health checks, alerts and done retries past a fixed window."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from support.models import (
    ApprovalItem,
    ApprovalStatus,
    ChatwootConversationLink,
    HealthCheck,
    OutboundRetry,
    RetryStatus,
    SupportAlert,
    WebhookDelivery,
)
from support.retention import support_data_purge
from tests.factories.support import (
    ApprovalItemFactory,
    ChatwootConnectionFactory,
    ChatwootConversationLinkFactory,
    HealthCheckFactory,
    OutboundRetryFactory,
    SupportAlertFactory,
    WebhookDeliveryFactory,
)

pytestmark = pytest.mark.django_db

NOTHING = {
    "webhook_deliveries": 0,
    "conversation_links": 0,
    "approval_items": 0,
    "health_checks": 0,
    "alerts": 0,
    "retries": 0,
}


def _age(queryset, days: int, *fields: str) -> None:
    then = timezone.now() - timedelta(days=days)
    queryset.update(**dict.fromkeys(fields or ("created_at", "updated_at"), then))


@pytest.fixture
def main(tenant):
    return ChatwootConnectionFactory(tenant=tenant, name="Main")


def test_past_retention_payloads_go_and_texts_and_names_are_redacted(main, tenant, other_tenant):
    old_days = tenant.pii_retention_days + 1
    old_delivery = WebhookDeliveryFactory(connection=main)
    new_delivery = WebhookDeliveryFactory(connection=main)
    foreign_delivery = WebhookDeliveryFactory(connection__tenant=other_tenant)
    old_link = ChatwootConversationLinkFactory(connection=main, contact_name="Jane Customer")
    new_link = ChatwootConversationLinkFactory(connection=main, contact_name="Joe Customer")
    sent = ApprovalItemFactory(
        link=old_link,
        status=ApprovalStatus.SENT,
        customer_text="I'm jane@example.com, call +44 20 7946 0958",
        draft_text="We'll email jane@example.com",
        final_text="We'll email jane@example.com today",
    )
    rejected = ApprovalItemFactory(
        link=old_link, status=ApprovalStatus.REJECTED, reject_reason="she is jane@example.com"
    )
    waiting = ApprovalItemFactory(link=old_link, customer_text="still jane@example.com")
    recent = ApprovalItemFactory(
        link=new_link, status=ApprovalStatus.SENT, customer_text="joe@example.com"
    )
    _age(WebhookDelivery.objects.exclude(pk=new_delivery.pk), old_days)
    _age(ChatwootConversationLink.objects.filter(pk=old_link.pk), old_days)
    _age(ApprovalItem.objects.exclude(pk=recent.pk), old_days, "received_at")
    foreign_link = ChatwootConversationLinkFactory(
        connection=foreign_delivery.connection, contact_name="Theirs"
    )
    _age(ChatwootConversationLink.objects.filter(pk=foreign_link.pk), 3650)

    counts = support_data_purge(tenant=tenant)

    assert counts == {
        **NOTHING,
        "webhook_deliveries": 1,
        "conversation_links": 1,
        "approval_items": 2,
    }
    assert not WebhookDelivery.objects.filter(pk=old_delivery.pk).exists()
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {
        new_delivery.pk,
        foreign_delivery.pk,
    }
    old_link.refresh_from_db()
    new_link.refresh_from_db()
    foreign_link.refresh_from_db()
    assert (old_link.contact_name, new_link.contact_name) == ("", "Joe Customer")
    assert foreign_link.contact_name == "Theirs"
    sent.refresh_from_db()
    assert sent.customer_text == "I'm [email], call [phone]"
    assert (sent.draft_text, sent.final_text) == (
        "We'll email [email]",
        "We'll email [email] today",
    )
    assert sent.anonymized_at is not None
    assert sent.status == ApprovalStatus.SENT  # the row stays for the queue's counts
    rejected.refresh_from_db()
    assert rejected.reject_reason == "she is [email]"
    # still waiting for an agent, or not old enough: untouched
    waiting.refresh_from_db()
    recent.refresh_from_db()
    assert waiting.customer_text == "still jane@example.com"
    assert recent.customer_text == "joe@example.com"
    assert (waiting.anonymized_at, recent.anonymized_at) == (None, None)
    # a second run changes nothing
    assert support_data_purge(tenant=tenant) == NOTHING


def test_old_operational_rows_are_pruned_but_not_what_the_support_page_shows(
    main, tenant, settings
):
    settings.SUPPORT_RECORDS_RETENTION_DAYS = 30
    other = ChatwootConnectionFactory(tenant=tenant, name="Other")
    failed_long_ago = HealthCheckFactory(connection=main, exit_code=2)
    old_pass = HealthCheckFactory(connection=main)
    old_pass_2 = HealthCheckFactory(connection=main)  # main's latest check
    other_only = HealthCheckFactory(connection=other)  # other's latest, and old
    _age(HealthCheck.objects.all(), 31)
    HealthCheck.objects.filter(pk=failed_long_ago.pk).update(
        created_at=timezone.now() - timedelta(days=40)
    )
    HealthCheck.objects.filter(pk=old_pass.pk).update(
        created_at=timezone.now() - timedelta(days=35)
    )
    old_alert = SupportAlertFactory(tenant=tenant)
    new_alert = SupportAlertFactory(tenant=tenant)
    _age(SupportAlert.objects.filter(pk=old_alert.pk), 31)
    done = OutboundRetryFactory(connection=main, status=RetryStatus.DONE)
    done_without_stamp = OutboundRetryFactory(connection=main, status=RetryStatus.DONE)
    done_recently = OutboundRetryFactory(connection=main, status=RetryStatus.DONE)
    gave_up = OutboundRetryFactory(connection=main, status=RetryStatus.FAILED)
    queued = OutboundRetryFactory(connection=main)
    _age(OutboundRetry.objects.exclude(pk=done_recently.pk), 31, "updated_at")
    OutboundRetry.objects.filter(pk=done.pk).update(done_at=timezone.now() - timedelta(days=31))
    OutboundRetry.objects.filter(pk=done_recently.pk).update(done_at=timezone.now())

    counts = support_data_purge(tenant=tenant)

    assert counts == {**NOTHING, "health_checks": 1, "alerts": 1, "retries": 2}
    # each connection's latest check and latest failure stay (the page shows them)
    assert set(HealthCheck.objects.values_list("pk", flat=True)) == {
        failed_long_ago.pk,
        old_pass_2.pk,
        other_only.pk,
    }
    assert list(SupportAlert.objects.values_list("pk", flat=True)) == [new_alert.pk]
    assert set(OutboundRetry.objects.values_list("pk", flat=True)) == {
        done_recently.pk,
        gave_up.pk,
        queued.pk,
    }
    assert done_without_stamp.pk not in set(OutboundRetry.objects.values_list("pk", flat=True))
    assert support_data_purge(tenant=tenant) == NOTHING


def test_deliveries_are_deleted_in_batches(main, tenant, django_assert_max_num_queries):
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            tenant=tenant,
            connection=main,
            delivery_key=f"k{n}",
            body='{"sender": {"email": "jane@example.com"}}',
            valid=True,
            processed=True,
        )
        for n in range(1000)
    )
    _age(WebhookDelivery.objects.all(), tenant.pii_retention_days + 1)
    with django_assert_max_num_queries(12):
        assert support_data_purge(tenant=tenant)["webhook_deliveries"] == 1000
    assert not WebhookDelivery.objects.exists()


def test_the_beat_task_queues_one_purge_per_tenant(main, tenant, other_tenant, settings):
    from support.tasks import purge_support_data, purge_tenant_support_data

    theirs = WebhookDeliveryFactory(connection__tenant=other_tenant)
    mine = WebhookDeliveryFactory(connection=main)
    _age(WebhookDelivery.objects.all(), 3650)

    assert purge_support_data() == 2
    assert not WebhookDelivery.objects.filter(pk__in=[mine.pk, theirs.pk]).exists()
    assert purge_tenant_support_data(tenant_id=tenant.pk) == NOTHING
    assert purge_tenant_support_data(tenant_id=10**9) == {}
    assert settings.CELERY_BEAT_SCHEDULE["support-retention"]["task"] == (
        "support.tasks.purge_support_data"
    )


# --- where the last run got to (Tenant.retention_marks) -------------------------------------


def _marks(tenant) -> dict:
    from tenants.models import Tenant

    return Tenant.objects.get(pk=tenant.pk).retention_marks


def _old_support_data(main, n: int) -> None:
    old_days = main.tenant.pii_retention_days + 1
    for _ in range(n):
        link = ChatwootConversationLinkFactory(connection=main, contact_name="Jane Customer")
        WebhookDeliveryFactory(connection=main)
        ApprovalItemFactory(link=link, status=ApprovalStatus.SENT, customer_text="jane@example.com")
    _age(WebhookDelivery.objects.filter(connection=main), old_days)
    _age(ChatwootConversationLink.objects.filter(connection=main), old_days)
    _age(ApprovalItem.objects.filter(connection=main), old_days, "received_at")


def test_a_run_with_nothing_new_past_the_cutoff_starts_at_the_mark(
    main, tenant, django_assert_max_num_queries
):
    _old_support_data(main, 3)
    assert support_data_purge(tenant=tenant) == {
        **NOTHING,
        "webhook_deliveries": 3,
        "conversation_links": 3,
        "approval_items": 3,
    }
    assert set(_marks(tenant)) == {"webhook_deliveries", "conversation_links", "approval_items"}
    # a link behind the mark that (unlike any real one) still has a name: not read again
    link = ChatwootConversationLink.objects.filter(connection=main).first()
    ChatwootConversationLink.objects.filter(pk=link.pk).update(contact_name="Jane")

    with django_assert_max_num_queries(9):
        assert support_data_purge(tenant=tenant) == NOTHING
    link.refresh_from_db()
    assert link.contact_name == "Jane"


def test_a_second_run_costs_the_same_few_queries_however_many_rows_are_old(
    main, tenant, other_tenant, django_assert_max_num_queries
):
    theirs = ChatwootConnectionFactory(tenant=other_tenant, name="Theirs")
    _old_support_data(main, 2)
    _old_support_data(theirs, 30)
    costs = []
    for owner in (tenant, other_tenant):
        support_data_purge(tenant=owner)
        with django_assert_max_num_queries(9) as second:
            assert support_data_purge(tenant=owner) == NOTHING
        costs.append(len(second.captured_queries))
    assert costs[0] == costs[1]


def test_a_shorter_retention_period_purges_from_the_mark_on(main, tenant):
    tenant.pii_retention_days = 90
    tenant.save(update_fields=["pii_retention_days"])
    delivery = WebhookDeliveryFactory(connection=main)
    link = ChatwootConversationLinkFactory(connection=main, contact_name="Jane Customer")
    item = ApprovalItemFactory(link=link, status=ApprovalStatus.SENT, customer_text="j@example.com")
    _age(WebhookDelivery.objects.all(), 60)
    _age(ChatwootConversationLink.objects.all(), 60)
    _age(ApprovalItem.objects.all(), 60, "received_at")
    assert support_data_purge(tenant=tenant) == NOTHING
    assert "approval_items" in _marks(tenant)

    tenant.pii_retention_days = 30
    tenant.save(update_fields=["pii_retention_days"])
    assert support_data_purge(tenant=tenant) == {
        **NOTHING,
        "webhook_deliveries": 1,
        "conversation_links": 1,
        "approval_items": 1,
    }
    assert not WebhookDelivery.objects.filter(pk=delivery.pk).exists()
    item.refresh_from_db()
    assert item.customer_text == "[email]"


def test_a_run_cut_short_moves_no_mark(main, tenant):
    for n in range(3):
        WebhookDeliveryFactory(connection=main, delivery_key=f"cut-{n}")
    _age(WebhookDelivery.objects.all(), tenant.pii_retention_days + 1)
    assert support_data_purge(tenant=tenant, batch_size=2, max_batches=1)["webhook_deliveries"] == 2
    assert "webhook_deliveries" not in _marks(tenant)
    assert support_data_purge(tenant=tenant, batch_size=2, max_batches=1)["webhook_deliveries"] == 1
    assert "webhook_deliveries" in _marks(tenant)


def _sweep_due(tenant, kind: str) -> None:
    """Make `kind`'s daily sweep due, as a day after the last one."""
    from tenants.models import Tenant
    from tenants.retention import RESWEEP

    marks = _marks(tenant)
    swept_at = datetime.fromisoformat(marks[kind]["swept_at"])
    marks[kind]["swept_at"] = (swept_at - RESWEEP).isoformat()
    Tenant.objects.filter(pk=tenant.pk).update(retention_marks=marks)
    tenant.refresh_from_db()


def test_an_item_decided_after_the_retention_period_is_redacted_by_the_daily_sweep(main, tenant):
    """An item waiting for an agent keeps its texts past the retention period and comes
    due when it is decided, behind the mark: the approval items' run goes over every row
    again once a day."""
    link = ChatwootConversationLinkFactory(connection=main)
    waiting = ApprovalItemFactory(link=link, customer_text="jane@example.com")
    _age(ApprovalItem.objects.all(), tenant.pii_retention_days + 1, "received_at")
    assert support_data_purge(tenant=tenant)["approval_items"] == 0
    ApprovalItem.objects.filter(pk=waiting.pk).update(status=ApprovalStatus.REJECTED)
    _sweep_due(tenant, "approval_items")
    assert support_data_purge(tenant=tenant)["approval_items"] == 1
    waiting.refresh_from_db()
    assert waiting.customer_text == "[email]"


def test_an_item_chatwoot_delivers_late_with_an_old_time_is_redacted_by_the_daily_sweep(
    main, tenant
):
    """An item's received_at is the time Chatwoot gives the message: a delivery that comes
    late (Chatwoot retrying after an outage) can put a new item behind the mark."""
    assert support_data_purge(tenant=tenant) == NOTHING
    late = ApprovalItemFactory(
        link=ChatwootConversationLinkFactory(connection=main),
        status=ApprovalStatus.SENT,
        customer_text="jane@example.com",
        received_at=timezone.now() - timedelta(days=tenant.pii_retention_days + 1),
    )
    _sweep_due(tenant, "approval_items")
    assert support_data_purge(tenant=tenant)["approval_items"] == 1
    late.refresh_from_db()
    assert late.customer_text == "[email]"
