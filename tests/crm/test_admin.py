import pytest
from django.urls import reverse

from crm.models import Message
from tests.admin_forms import admin_form_data
from tests.factories import BotFactory, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


def change_url(obj) -> str:
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def test_conversation_refuses_another_tenants_bot_and_contact(
    superuser_client, tenant, other_tenant
):
    from crm.models import Contact

    conversation = ConversationFactory(tenant=tenant)
    their_bot = BotFactory(tenant=other_tenant)
    their_contact = Contact.objects.create(tenant=other_tenant, name="Them")
    url = change_url(conversation)
    data = admin_form_data(
        superuser_client.get(url), bot=str(their_bot.pk), contact=str(their_contact.pk)
    )
    response = superuser_client.post(url, data)
    assert {"bot", "contact"} <= set(response.context["adminform"].form.errors)
    conversation.refresh_from_db()
    assert (conversation.bot_id, conversation.contact_id) == (None, None)


def test_conversation_tenant_is_read_only(superuser_client, tenant, other_tenant):
    conversation = ConversationFactory(tenant=tenant)
    url = change_url(conversation)
    data = admin_form_data(superuser_client.get(url), tenant=str(other_tenant.pk))
    assert superuser_client.post(url, data).status_code == 302
    conversation.refresh_from_db()
    assert conversation.tenant_id == tenant.pk


def test_messages_changelist_skips_the_full_count(superuser_client, tenant):
    MessageFactory(conversation=ConversationFactory(tenant=tenant))
    page = superuser_client.get(reverse("admin:crm_message_changelist"))
    assert page.context["cl"].show_full_result_count is False
    assert "tenant" not in page.context["cl"].list_filter
    assert [m.pk for m in page.context["cl"].result_list] == list(
        Message.objects.values_list("pk", flat=True)
    )
