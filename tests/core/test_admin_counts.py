"""Admin changelists of the tables that grow with traffic and time count their rows once.

Django counts the filtered rows for the paginator; with `show_full_result_count` (the
default) a filtered or searched page also counts the whole table, a second full scan of
millions of rows on every click of a filter."""

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import Contact, Conversation, Message
from rollout.models import AuditEntry, GateEvaluation
from support.models import (
    ApprovalItem,
    ChatwootConversationLink,
    HealthCheck,
    SupportAlert,
    WebhookDelivery,
)
from webchat.models import WebChatEvent, WebChatHourlyRollup, WebChatSession

pytestmark = pytest.mark.django_db

GROWING = [
    Contact,
    Conversation,
    Message,
    WebChatSession,
    WebChatEvent,
    WebChatHourlyRollup,
    GateEvaluation,
    AuditEntry,
    HealthCheck,
    WebhookDelivery,
    ChatwootConversationLink,
    ApprovalItem,
    SupportAlert,
]


@pytest.mark.parametrize("model", GROWING, ids=lambda m: m.__name__)
def test_a_searched_changelist_counts_once(superuser_client, model):
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    assert admin.site._registry[model].search_fields  # the page has a search box
    with CaptureQueriesContext(connection) as queries:
        response = superuser_client.get(url, {"q": "needle"})
    assert response.status_code == 200
    table = connection.ops.quote_name(meta.db_table)
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"] and f"FROM {table}" in q["sql"]]
    assert len(counts) == 1, counts
