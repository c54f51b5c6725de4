from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from support.models import (
    ApprovalItem,
    ApprovalStatus,
    ChatwootConversationLink,
    OutboundRetry,
    RetryOperation,
    RetryStatus,
    SupportAlert,
    WebhookDelivery,
)
from tests.admin_forms import admin_form_data
from tests.factories import BotFactory, ConversationFactory
from tests.factories.support import (
    ApprovalItemFactory,
    ChatwootConnectionFactory,
    ChatwootConversationLinkFactory,
)

pytestmark = pytest.mark.django_db


def url_of(model, view: str, *args) -> str:
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


@pytest.fixture
def connection(tenant):
    return ChatwootConnectionFactory(tenant=tenant)


class TestConnectionForm:
    def test_another_tenants_bot_is_refused(self, superuser_client, connection, other_tenant):
        theirs = BotFactory(tenant=other_tenant)
        url = url_of(type(connection), "change", connection.pk)
        data = admin_form_data(superuser_client.get(url), bot=str(theirs.pk))
        response = superuser_client.post(url, data)
        assert "bot" in response.context["adminform"].form.errors
        connection.refresh_from_db()
        assert connection.bot_id is None

    def test_own_bot_is_saved_and_tenant_stays(
        self, superuser_client, connection, tenant, other_tenant
    ):
        ours = BotFactory(tenant=tenant)
        url = url_of(type(connection), "change", connection.pk)
        data = admin_form_data(
            superuser_client.get(url), bot=str(ours.pk), tenant=str(other_tenant.pk)
        )
        assert superuser_client.post(url, data).status_code == 302
        connection.refresh_from_db()
        assert (connection.bot_id, connection.tenant_id) == (ours.pk, tenant.pk)


def _delivery(connection, **fields) -> WebhookDelivery:
    defaults = {"delivery_key": f"k-{timezone.now().timestamp()}", "event": "x", "body": "nope"}
    return WebhookDelivery.objects.create(
        tenant=connection.tenant, connection=connection, valid=True, **(defaults | fields)
    )


def test_process_again_replays_only_unprocessed_deliveries(superuser_client, connection):
    done_at = timezone.now() - timedelta(days=3)
    processed = _delivery(
        connection, delivery_key="old", processed=True, processed_at=done_at, attempts=1
    )
    failed = _delivery(connection, delivery_key="failed", error="boom", attempts=1)
    response = superuser_client.post(
        url_of(WebhookDelivery, "changelist"),
        {"action": "reprocess", "_selected_action": [processed.pk, failed.pk]},
        follow=True,
    )
    assert response.status_code == 200
    processed.refresh_from_db()
    failed.refresh_from_db()
    # the old one is left exactly as it was; the failed one ran again (and failed again)
    assert (processed.processed, processed.processed_at, processed.attempts) == (
        True,
        done_at,
        1,
    )
    assert (failed.processed, failed.attempts) == (False, 2)
    texts = [str(m) for m in response.context["messages"]]
    assert "1 delivery(ies) queued for processing." in texts
    assert any("1 skipped" in t for t in texts)


def test_process_again_needs_the_change_permission(client, connection):
    """Processing a delivery writes into the tenant's conversations and posts drafts to its
    Chatwoot: an operator who may only look at deliveries cannot run it."""
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    failed = _delivery(connection, delivery_key="failed", error="boom", attempts=1)
    url = url_of(WebhookDelivery, "changelist")
    looker = UserFactory(is_staff=True)
    looker.user_permissions.add(Permission.objects.get(codename="view_webhookdelivery"))
    client.force_login(looker)
    page = client.get(url)
    assert page.status_code == 200
    action_form = page.context["action_form"]  # None when no action is left
    offered = [name for name, _label in action_form.fields["action"].choices] if action_form else []
    assert "reprocess" not in offered
    client.post(url, {"action": "reprocess", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert failed.attempts == 1


class TestReadOnly:
    def test_approval_items_cannot_be_decided_here(self, superuser_client, connection):
        item = ApprovalItemFactory(link=ChatwootConversationLinkFactory(connection=connection))
        response = superuser_client.post(
            url_of(ApprovalItem, "change", item.pk), {"status": ApprovalStatus.APPROVED}
        )
        assert response.status_code == 403
        item.refresh_from_db()
        assert item.status == ApprovalStatus.PENDING
        assert superuser_client.get(url_of(ApprovalItem, "change", item.pk)).status_code == 200

    def test_link_cursors_cannot_be_edited(self, superuser_client, connection):
        link = ChatwootConversationLinkFactory(connection=connection, last_synced_message_id=5)
        response = superuser_client.post(
            url_of(ChatwootConversationLink, "change", link.pk),
            {"last_synced_message_id": "0", "attempted_message_id": "0", "status": "resolved"},
        )
        assert response.status_code == 403
        link.refresh_from_db()
        assert (link.last_synced_message_id, link.status) == (5, "open")

    def test_alerts_cannot_be_added_or_edited(self, superuser_client, tenant):
        alert = SupportAlert.objects.create(tenant=tenant, kind="sla", text="late")
        assert superuser_client.get(url_of(SupportAlert, "add")).status_code == 403
        superuser_client.post(url_of(SupportAlert, "change", alert.pk), {"text": "edited"})
        alert.refresh_from_db()
        assert alert.text == "late"

    def test_retry_status_and_attempts_are_read_only(self, superuser_client, connection):
        retry = OutboundRetry.objects.create(
            tenant=connection.tenant,
            connection=connection,
            operation=RetryOperation.REPLY,
            object_id=1,
            attempts=3,
            next_attempt_at=timezone.now(),
        )
        url = url_of(OutboundRetry, "change", retry.pk)
        page = superuser_client.get(url)
        assert not {"status", "attempts", "tenant"} & set(page.context["adminform"].form.fields)
        data = admin_form_data(page, status=RetryStatus.DONE, attempts="0", retryable="")
        assert superuser_client.post(url, data).status_code == 302
        retry.refresh_from_db()
        assert (retry.status, retry.attempts, retry.retryable) == (RetryStatus.QUEUED, 3, False)
        assert superuser_client.get(url_of(OutboundRetry, "add")).status_code == 403


class TestChangelists:
    """Query counts do not grow with the rows shown (30 rows here; 100 in the review)."""

    def test_links(self, superuser_client, connection, django_assert_max_num_queries):
        for _ in range(30):
            ChatwootConversationLinkFactory(
                connection=connection, conversation=ConversationFactory(tenant=connection.tenant)
            )
        with django_assert_max_num_queries(10):
            response = superuser_client.get(url_of(ChatwootConversationLink, "changelist"))
        assert len(response.context["cl"].result_list) == 30

    def test_alerts(self, superuser_client, django_assert_max_num_queries):
        from tests.factories import TenantFactory

        for n in range(30):
            SupportAlert.objects.create(tenant=TenantFactory(), kind="sla", text=f"late {n}")
        with django_assert_max_num_queries(10):
            response = superuser_client.get(url_of(SupportAlert, "changelist"))
        assert len(response.context["cl"].result_list) == 30
        assert "tenant" not in response.context["cl"].list_filter


def test_the_connection_list_shows_the_webhook_mode_that_applies(superuser_client, connection):
    """Unsigned mode is accepted only without a secret: with one, the list says signed."""
    connection.allow_unsigned_webhooks = True
    connection.save()
    listing = superuser_client.get(reverse("admin:support_chatwootconnection_changelist"))
    assert "signed" in listing.content.decode()
    assert "unsigned accepted" not in listing.content.decode()
    connection.set_webhook_secret("")
    connection.save()
    listing = superuser_client.get(reverse("admin:support_chatwootconnection_changelist"))
    assert "unsigned accepted" in listing.content.decode()
