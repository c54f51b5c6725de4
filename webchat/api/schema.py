"""What the OpenAPI schema of the public API says beyond what drf-spectacular discovers."""

# The session token routes' security (the scheme is in SPECTACULAR_SETTINGS).
SESSION_TOKEN = [{"sessionToken": []}]

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until the limit that was hit resets its window.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def document_retry_after(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: every 429 answer carries Retry-After."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            limited = operation.get("responses", {}).get("429")
            if limited is not None:
                limited.setdefault("headers", {}).update(RETRY_AFTER)
    return result
