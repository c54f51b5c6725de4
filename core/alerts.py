"""Posting one alert to a Slack-compatible incoming webhook: `{"text": ...}` as JSON.

Callers decide what to alert and record; this only delivers, and never raises.
"""

import httpx

from core.http import tls_context

# Not every failure is an httpx.HTTPError: building the request raises httpx.InvalidURL
# (`http://[::1`) or a ValueError (a host label over 63 characters fails IDNA).
_FAILURES = (httpx.HTTPError, httpx.InvalidURL, httpx.CookieConflict, httpx.StreamError, ValueError)


def webhook_text_post(*, url: str, text: str, timeout: float, sender: str) -> str | None:
    """POST the text; None when delivered (2xx), else a short description of the failure."""
    try:
        response = httpx.post(
            url,
            json={"text": text},
            timeout=timeout,
            headers={"User-Agent": f"ReplyBase-{sender}/1"},
            verify=tls_context(),
        )
    except _FAILURES as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if not response.is_success:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    return None
