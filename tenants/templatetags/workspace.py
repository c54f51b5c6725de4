"""`{% workspace_field %}`: the workspace a dashboard form was rendered for.

Put next to `{% csrf_token %}` in every dashboard form. The workspace comes from the
session, which another tab can switch; `tenants.access.tenant_view` refuses a form posted
for a workspace that is no longer the chosen one, instead of saving it into the new one.
"""

from django import template
from django.utils.html import format_html

from tenants.access import WORKSPACE_FIELD

register = template.Library()


@register.simple_tag(takes_context=True)
def workspace_field(context) -> str:
    tenant = context.get("current_tenant")
    if tenant is None:
        return ""
    return format_html('<input type="hidden" name="{}" value="{}">', WORKSPACE_FIELD, tenant.pk)
