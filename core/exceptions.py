"""Typed application errors: services raise them, one handler renders them.

Each error has a stable `code` (the public API contract) and an HTTP status.
"""


class ApplicationError(Exception):
    code = "invalid_request"
    status = 400
    default_message = "The request is not valid."

    def __init__(self, message: str | None = None, *, extra: dict | None = None) -> None:
        self.message = message or self.default_message
        self.extra = extra or {}
        super().__init__(self.message)


class InvalidRequest(ApplicationError):
    pass


class NotFound(ApplicationError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class PermissionDenied(ApplicationError):
    code = "permission_denied"
    status = 403
    default_message = "You do not have permission to do that."


class PayloadTooLarge(ApplicationError):
    code = "payload_too_large"
    status = 413
    default_message = "The request body is too large."


class RateLimited(ApplicationError):
    code = "rate_limited"
    status = 429
    default_message = "Too many requests. Try again later."

    def __init__(self, message: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after
