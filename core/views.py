import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.metrics import exposition
from core.ops import readiness_report


@require_GET
@never_cache
def healthz(request):
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request):
    report = readiness_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


@require_GET
@never_cache
def metrics(request):
    token = settings.METRICS_TOKEN  # production refuses to start without one
    given = request.headers.get("Authorization", "")
    if token and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return JsonResponse(
            {"error": {"code": "unauthorized", "message": "Metrics need a bearer token."}},
            status=401,
        )
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)
