"""Support-side data retention: Chatwoot payloads, approval texts and contact names past the
tenant's retention period; health checks, alerts and done retries past a fixed window."""

from datetime import timedelta

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
