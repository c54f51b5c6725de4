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


def test_a_long_conversation_page_shows_its_latest_messages_and_links_the_rest(
    superuser_client, tenant, django_assert_max_num_queries
):
    from crm.admin import INLINE_MESSAGES
    from tests.factories import MessageFactory

    conversation = ConversationFactory(tenant=tenant)
    MessageFactory.create_batch(
        INLINE_MESSAGES + 5, tenant=tenant, conversation=conversation, text="hello <b>there</b>"
    )
    MessageFactory(tenant=tenant, conversation=conversation, text="the newest one")
    with django_assert_max_num_queries(20):
        page = superuser_client.get(change_url(conversation)).content.decode()
    assert page.count("hello &lt;b&gt;there&lt;/b&gt;") == INLINE_MESSAGES - 1
    assert "the newest one" in page
    assert f"?conversation__id__exact={conversation.pk}" in page
    listed = superuser_client.get(f"/admin/crm/message/?conversation__id__exact={conversation.pk}")
    assert listed.status_code == 200
    assert {m.conversation_id for m in listed.context["cl"].result_list} == {conversation.pk}
