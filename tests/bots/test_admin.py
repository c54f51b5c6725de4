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


def _staff_with(*codenames):
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def test_publish_actions_need_the_change_permission(client, tenant):
    """An operator who may only look at articles cannot publish or unpublish them: the
    bulk actions change what every visitor of the tenant is answered from."""
    from tests.factories import KnowledgeArticleFactory

    live = KnowledgeArticleFactory(tenant=tenant, published=True)
    draft = KnowledgeArticleFactory(tenant=tenant, published=False)
    url = reverse("admin:bots_knowledgearticle_changelist")
    client.force_login(_staff_with("view_knowledgearticle"))
    page = client.get(url)
    assert page.status_code == 200
    action_form = page.context["action_form"]  # None when no action is left
    offered = [name for name, _label in action_form.fields["action"].choices] if action_form else []
    assert "publish" not in offered and "unpublish" not in offered
    client.post(url, {"action": "unpublish", "_selected_action": [live.pk]})
    client.post(url, {"action": "publish", "_selected_action": [draft.pk]})
    live.refresh_from_db()
    draft.refresh_from_db()
    assert (live.published, draft.published) == (True, False)

    client.force_login(_staff_with("view_knowledgearticle", "change_knowledgearticle"))
    assert (
        client.post(url, {"action": "unpublish", "_selected_action": [live.pk]}).status_code == 302
    )
    live.refresh_from_db()
    assert live.published is False
