"""Queue-depth alerts, the alert channel, Prometheus metrics, the support page, the admin."""

from datetime import timedelta

import pytest
from django.utils import timezone

from support import alerts
from support.models import HealthCheck, OutboundRetry, SupportAlert
from support.monitor import monitor_run
from tests.factories import MembershipFactory
from tests.factories.support import (
    ApprovalItemFactory,
    ChatwootConversationLinkFactory,
    WebhookDeliveryFactory,
)


def _fill_queue(connection, n):
    link = ChatwootConversationLinkFactory(connection=connection)
    for _ in range(n):
        ApprovalItemFactory(link=link)


def test_approval_queue_deeper_than_25_alerts_once_per_cooldown(connection, alert_sink):
    _fill_queue(connection, 25)
    monitor_run()
    assert alert_sink.texts == []
    _fill_queue(connection, 1)
    monitor_run()
    monitor_run()
    [text] = alert_sink.texts
    assert "Approval queue depth is 26" in text and connection.tenant.name in text


def test_retry_queue_deeper_than_50_alerts(connection, alert_sink):
    now = timezone.now()
    OutboundRetry.objects.bulk_create(
        OutboundRetry(
            tenant=connection.tenant,
            connection=connection,
            operation="reply",
            object_id=i,
            next_attempt_at=now + timedelta(hours=1),
        )
        for i in range(51)
    )
    result = monitor_run()
    assert result["retry_queue"] == 51
    [text] = alert_sink.texts
    assert "retry queue depth is 51" in text and text.startswith("[Level 1]")


def test_alerts_never_raise_when_the_channel_is_down(db, settings, chatwoot_standin):
    settings.SUPPORT_ALERT_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    alert = alerts.alert_send(kind="test", text="hello")
    assert alert is not None and not alert.delivered and alert.error
    chatwoot_standin.set_fault("status", status=500)
    settings.SUPPORT_ALERT_WEBHOOK_URL = chatwoot_standin.url + "/hook"
    alert = alerts.alert_send(kind="test", text="hello", level=2)
    assert alert.error.startswith("HTTP 500") and alert.text.startswith("[Level 2 · PAGE]")
    assert SupportAlert.objects.count() == 2


def test_slack_payload_shape(alert_sink, db):
    alerts.alert_send(kind="test", text="Chatwoot is down")
    [request] = alert_sink.requests_to("POST /services/hook")
    assert request.json == {"text": "[Level 1] Chatwoot is down"}
    assert request.headers["content-type"] == "application/json"


def test_prometheus_metrics_cover_the_integration(client, connection, post_webhook, articles):
    from tests.standins.chatwoot import make_webhook

    post_webhook(make_webhook("message_created", content="How much is shipping?"))
    monitor_run()
    body = client.get("/metrics").content.decode()
    for name in (
        "replybase_support_webhooks_total",
        "replybase_support_webhook_ack_seconds",
        "replybase_support_webhook_processing_seconds",
        "replybase_support_drafts_total",
        "replybase_support_approval_queue_depth",
        "replybase_support_retry_queue_depth",
        "replybase_support_sla_conversations",
        "replybase_support_sla_breach_rate",
        "replybase_support_chatwoot_calls_total",
    ):
        assert name in body, name


# --- the /support/ page -----------------------------------------------------------------------------


def test_support_page_shows_health_queues_and_escalations(client, viewer, connection):
    now = timezone.now()
    HealthCheck.objects.create(
        tenant=connection.tenant,
        connection=connection,
        exit_code=0,
        platform_ok=True,
        platform_ms=120,
        api_ok=True,
        api_ms=640,
        started_at=now,
    )
    HealthCheck.objects.create(
        tenant=connection.tenant,
        connection=connection,
        exit_code=3,
        platform_ok=True,
        platform_ms=100,
        api_ok=False,
        api_error="HTTP 401: Invalid Access Token",
        started_at=now,
    )
    ChatwootConversationLinkFactory(
        connection=connection, first_customer_message_at=now - timedelta(minutes=40)
    )
    _fill_queue(connection, 2)
    client.force_login(viewer)
    response = client.get("/support/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "50 %" in body  # 1 of 2 checks passed
    assert "110 ms" in body and "640 ms" in body
    assert "HTTP 401: Invalid Access Token" in body
    assert "past SLA" in body and "SLA breached" in body
    assert "2</strong> drafts waiting" in body
    assert 'href="/support/"' in body  # the nav link


def test_support_page_query_count_does_not_grow_with_connections(
    client, viewer, tenant, django_assert_max_num_queries
):
    """The last check and the last failure of every connection, in a fixed number of
    queries (not two more per connection)."""
    from tests.factories.support import ChatwootConnectionFactory, HealthCheckFactory

    def connections(n):
        made = []
        for _ in range(n):
            conn = ChatwootConnectionFactory(tenant=tenant)
            failed = HealthCheckFactory(connection=conn, exit_code=3, api_error="HTTP 401")
            last = HealthCheckFactory(connection=conn)
            made.append((conn.pk, last.pk, failed.pk))
        return made

    expected = connections(3)
    client.force_login(viewer)
    client.get("/support/")
    with django_assert_max_num_queries(40) as few:
        client.get("/support/")
    expected += connections(27)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/support/")
    shown = {
        (h.connection.pk, h.last_check.pk, h.last_failure.pk) for h in response.context["health"]
    }
    assert shown == set(expected)


def test_support_page_shows_webhook_processing_latency(client, viewer, connection):
    """The runbook's key metric: received to processed, over the last 24 hours (target
    under 3 s); deliveries not processed yet, refused or older are left out."""
    now = timezone.now()

    def delivery(received_ago, took, **fields):
        row = WebhookDeliveryFactory(connection=connection, **fields)
        received = now - received_ago
        processed = None if took is None else received + took
        type(row).objects.filter(pk=row.pk).update(created_at=received, processed_at=processed)

    delivery(timedelta(minutes=5), timedelta(seconds=1))
    delivery(timedelta(minutes=9), timedelta(seconds=2))
    delivery(timedelta(minutes=1), None, processed=False)
    delivery(timedelta(minutes=2), timedelta(seconds=50), valid=False)
    delivery(timedelta(hours=30), timedelta(seconds=40))
    client.force_login(viewer)
    body = client.get("/support/").content.decode()
    assert "1500 ms</strong> webhook processing" in body
    assert "target &lt; 3 s" in body


def test_support_page_warns_about_unsigned_webhooks(client, viewer, connection):
    connection.allow_unsigned_webhooks = True
    connection.set_webhook_secret("")
    connection.save()
    client.force_login(viewer)
    body = client.get("/support/").content.decode()
    assert "accepted unsigned" in body


def test_support_page_without_a_connection_and_across_tenants(client, other_tenant, connection):
    stranger = MembershipFactory(tenant=other_tenant, role="owner").user
    client.force_login(stranger)
    body = client.get("/support/").content.decode()
    assert "No Chatwoot connection is configured" in body
    assert connection.base_url not in body


@pytest.fixture
def staff(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-ops-123456")


def test_admin_lists_connections_with_health_and_never_shows_secrets(client, staff, connection):
    HealthCheck.objects.create(
        tenant=connection.tenant,
        connection=connection,
        exit_code=0,
        platform_ms=80,
        api_ms=90,
        started_at=timezone.now(),
    )
    client.force_login(staff)
    listing = client.get("/admin/support/chatwootconnection/").content.decode()
    assert "100.0 % of 1" in listing
    page = client.get(f"/admin/support/chatwootconnection/{connection.pk}/change/").content.decode()
    assert connection.webhook_token in page
    assert "cw-standin-token" not in page and "whsec-chatwoot-tests" not in page
    for model in (
        "healthcheck",
        "webhookdelivery",
        "approvalitem",
        "outboundretry",
        "supportalert",
    ):
        assert client.get(f"/admin/support/{model}/").status_code == 200


def test_admin_saves_secrets_write_only(client, staff, connection):
    client.force_login(staff)
    url = f"/admin/support/chatwootconnection/{connection.pk}/change/"
    form = {
        "tenant": connection.tenant_id,
        "name": connection.name,
        "active": "on",
        "base_url": connection.base_url,
        "account_id": 1,
        "inbox_id": 1,
        "api_token": "",
        "webhook_secret": "new-secret",
        "sla_minutes": 45,
        "health_path": "/health",
        "embed_token": "",
        "maintenance_windows-TOTAL_FORMS": 0,
        "maintenance_windows-INITIAL_FORMS": 0,
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    connection.refresh_from_db()
    assert connection.api_token == "cw-standin-token"  # kept
    assert connection.webhook_secret == "new-secret"
    assert connection.sla_minutes == 45


@pytest.fixture
def parked_note(connection, chatwoot_standin):
    """A private note parked in the retry queue: (its approval item, its retry)."""
    link = ChatwootConversationLinkFactory(
        connection=connection, chatwoot_conversation_id=chatwoot_standin.seed_conversation()["id"]
    )
    item = ApprovalItemFactory(link=link)
    retry = OutboundRetry.objects.create(
        tenant=connection.tenant,
        connection=connection,
        operation="private_note",
        object_id=item.pk,
        retryable=False,
        next_attempt_at=timezone.now(),
    )
    return item, retry


def test_admin_retry_action(client, staff, parked_note):
    item, retry = parked_note
    client.force_login(staff)
    response = client.post(
        "/admin/support/outboundretry/",
        {"action": "retry_now", "_selected_action": [retry.pk]},
    )
    assert response.status_code == 302
    retry.refresh_from_db()
    item.refresh_from_db()
    assert retry.status == "done" and item.private_note_id


def test_admin_retry_action_needs_the_change_permission(client, parked_note):
    """Retrying posts to the tenant's Chatwoot: an operator who may only look cannot."""
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    item, retry = parked_note
    looker = UserFactory(is_staff=True)
    looker.user_permissions.add(Permission.objects.get(codename="view_outboundretry"))
    client.force_login(looker)
    assert client.get("/admin/support/outboundretry/").status_code == 200
    client.post(
        "/admin/support/outboundretry/",
        {"action": "retry_now", "_selected_action": [retry.pk]},
    )
    retry.refresh_from_db()
    item.refresh_from_db()
    assert retry.status != "done" and not item.private_note_id
