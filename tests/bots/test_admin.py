import pytest
from django.urls import reverse

from tests.admin_forms import admin_form_data

pytestmark = pytest.mark.django_db


def test_bot_tenant_is_read_only_on_change(superuser_client, bot, tenant, other_tenant):
    url = reverse("admin:bots_bot_change", args=[bot.pk])
    page = superuser_client.get(url)
    assert "tenant" not in page.context["adminform"].form.fields
    name = bot.name + " renamed"
    data = admin_form_data(page, tenant=str(other_tenant.pk), name=name)
    assert superuser_client.post(url, data).status_code == 302
    bot.refresh_from_db()
    assert (bot.tenant_id, bot.name) == (tenant.pk, name)


def test_bot_add_picks_the_tenant_by_autocomplete(superuser_client):
    page = superuser_client.get(reverse("admin:bots_bot_add"))
    widget = page.context["adminform"].form.fields["tenant"].widget
    assert type(widget.widget).__name__ == "AutocompleteSelect"
