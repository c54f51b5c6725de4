from datetime import timedelta

import factory
from django.utils import timezone

from support.models import (
    ApprovalItem,
    ApprovalStatus,
    ChatwootConnection,
    ChatwootConversationLink,
    HealthCheck,
    MaintenanceWindow,
    OutboundRetry,
    RetryOperation,
    SupportAlert,
    WebhookDelivery,
)
from tests.factories.core import TenantFactory

API_TOKEN = "cw-standin-token"
WEBHOOK_SECRET = "whsec-chatwoot-tests"


class ChatwootConnectionFactory(factory.django.DjangoModelFactory):
    """A connection to a (stand-in) Chatwoot; pass base_url=chatwoot_standin.url."""

    class Meta:
        model = ChatwootConnection
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Chatwoot {n}")
    base_url = "http://127.0.0.1:9"
    account_id = 1
    inbox_id = 1
    sla_minutes = 30

    @factory.post_generation
    def api_token(connection, create, extracted, **kwargs):
        connection.set_api_token(API_TOKEN if extracted is None else extracted)
        if create:
            connection.save(update_fields=["api_token_encrypted"])

    @factory.post_generation
    def webhook_secret(connection, create, extracted, **kwargs):
        connection.set_webhook_secret(WEBHOOK_SECRET if extracted is None else extracted)
        if create:
            connection.save(update_fields=["webhook_secret_encrypted"])


class ChatwootConversationLinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChatwootConversationLink

    connection = factory.SubFactory(ChatwootConnectionFactory)
    tenant = factory.SelfAttribute("connection.tenant")
    chatwoot_conversation_id = factory.Sequence(lambda n: 1000 + n)
    contact_name = "Jane Customer"


class ApprovalItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApprovalItem

    link = factory.SubFactory(ChatwootConversationLinkFactory)
    connection = factory.SelfAttribute("link.connection")
    tenant = factory.SelfAttribute("link.tenant")
    chatwoot_message_id = factory.Sequence(lambda n: 5000 + n)
    customer_text = "How much is shipping?"
    received_at = factory.LazyFunction(timezone.now)
    due_at = factory.LazyAttribute(lambda o: o.received_at + timedelta(minutes=30))
    status = ApprovalStatus.PENDING
    draft_text = "Standard shipping costs $6.95."
    draft_outcome = "answered"


class MaintenanceWindowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MaintenanceWindow

    connection = factory.SubFactory(ChatwootConnectionFactory)
    tenant = factory.SelfAttribute("connection.tenant")


class WebhookDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookDelivery

    connection = factory.SubFactory(ChatwootConnectionFactory)
    tenant = factory.SelfAttribute("connection.tenant")
    delivery_key = factory.Sequence(lambda n: f"delivery-{n}")
    event = "message_created"
    headers = factory.LazyAttribute(lambda o: {"X-Chatwoot-Delivery": o.delivery_key})
    body = '{"event": "message_created", "sender": {"name": "Jane", "email": "jane@example.com"}}'
    valid = True
    processed = True


class HealthCheckFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HealthCheck

    connection = factory.SubFactory(ChatwootConnectionFactory)
    tenant = factory.SelfAttribute("connection.tenant")
    exit_code = 0
    platform_ok = True
    api_ok = True
    started_at = factory.LazyFunction(timezone.now)


class SupportAlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SupportAlert

    tenant = factory.SubFactory(TenantFactory)
    kind = "sla_breach"
    text = "[Level 1] SLA breach"


class OutboundRetryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutboundRetry

    connection = factory.SubFactory(ChatwootConnectionFactory)
    tenant = factory.SelfAttribute("connection.tenant")
    operation = RetryOperation.REPLY
    object_id = factory.Sequence(lambda n: 1 + n)
    next_attempt_at = factory.LazyFunction(timezone.now)
