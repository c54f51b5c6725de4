from django.conf import settings
from django.http import Http404
from django.shortcuts import render

from webchat.models import WebChatSite

DEMO_TENANT_SLUG = "demo"


def demo_page(request):
    """A host page with the real widget, for the embedded `make run` mode only."""
    if not settings.DEMO_MODE:
        raise Http404
    site = (
        WebChatSite.objects.filter(tenant__slug=DEMO_TENANT_SLUG, active=True)
        .order_by("id")
        .first()
    )
    if site is None:
        raise Http404("Run `manage.py seed_demo` first.")
    return render(request, "webchat/demo.html", {"site": site})
