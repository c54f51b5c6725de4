"""The one DRF exception handler: every API error is {"error": {"code", "message"}}."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.exceptions import ApplicationError

RATELIMIT_RETRY_AFTER = 60


def error_response(code: str, message: str, status: int, headers: dict | None = None) -> Response:
    return Response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def _validation_message(detail) -> str:
    """Flatten DRF's nested validation detail into one readable sentence."""
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            inner = _validation_message(value)
            parts.append(inner if field == "non_field_errors" else f"{field}: {inner}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_validation_message(item) for item in detail)
    return str(detail)


def api_exception_handler(exc, context) -> Response | None:
    if isinstance(exc, ApplicationError):
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return error_response(exc.code, exc.message, exc.status, headers)
    if isinstance(exc, Ratelimited):
        return error_response(
            "rate_limited",
            "Too many requests. Try again later.",
            429,
            {"Retry-After": str(RATELIMIT_RETRY_AFTER)},
        )
    if isinstance(exc, Http404):
        return error_response("not_found", "Not found.", 404)
    if isinstance(exc, DjangoPermissionDenied):
        return error_response("permission_denied", str(exc) or "Permission denied.", 403)
    if isinstance(exc, drf_exceptions.ValidationError):
        return error_response("invalid_request", _validation_message(exc.detail), 400)
    if isinstance(exc, drf_exceptions.ParseError):
        return error_response("invalid_request", "The body is not valid JSON.", 400)
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return error_response("invalid_request", "Send the body as application/json.", 415)
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return error_response("method_not_allowed", str(exc.detail), 405)
    if isinstance(exc, drf_exceptions.NotAcceptable):
        return error_response("not_acceptable", str(exc.detail), 406)
    response = drf_exception_handler(exc, context)
    if response is not None:
        code = getattr(exc, "default_code", "error")
        return error_response(code, _validation_message(response.data), response.status_code)
    return None
