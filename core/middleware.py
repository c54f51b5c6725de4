import re
import time
import uuid

import structlog

from core.metrics import HTTP_LATENCY, HTTP_REQUESTS

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Give every request an id (kept from X-Request-ID when sane) and bind it to the logs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class MetricsMiddleware:
    """Count requests and time them by route pattern (not raw path: bounded label values)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        if route.startswith("static/") or request.path.startswith("/static/"):
            route = "static"
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        return response


class DropNulFromQueryMiddleware:
    """NUL bytes are dropped from the query string before any view: PostgreSQL text cannot
    hold one, so a filter or search handed one (Django admin's list filters and
    autocomplete take query parameters as they come) would fail as a 500. A search for
    "a<NUL>b" is a search for "ab", as the dashboard's own searches already do."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "%00" in query or "\x00" in query:
            request.META["QUERY_STRING"] = query.replace("%00", "").replace("\x00", "")
            request.__dict__.pop("GET", None)  # parsed again from the cleaned string
        return self.get_response(request)
