"""Django's error views for paths no API view answered: JSON under /api/, as every API
error is (`{"error": {"code", "message"}}`), Django's own pages elsewhere."""

from django.http import JsonResponse
from django.views import defaults

API_PREFIX = "/api/"


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def not_found(request, exception=None):
    if _is_api(request):
        return _error("not_found", "There is no such API route.", 404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return _error("server_error", "Something went wrong on our side. Try again later.", 500)
    return defaults.server_error(request)


def bad_request(request, exception=None):
    if _is_api(request):
        return _error("invalid_request", "The request could not be understood.", 400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _is_api(request):
        return _error("forbidden", "This request is not allowed.", 403)
    return defaults.permission_denied(request, exception)
