"""Posting one alert to a Slack-compatible incoming webhook: `{"text": ...}` as JSON.

Callers decide what to alert and record; this only delivers, and never raises.
"""

import httpx


def webhook_text_post(*, url: str, text: str, timeout: float, sender: str) -> str | None:
    """POST the text; None when delivered (2xx), else a short description of the failure."""
    try:
        response = httpx.post(
            url,
            json={"text": text},
            timeout=timeout,
            headers={"User-Agent": f"ReplyBase-{sender}/1"},
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if not response.is_success:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    return None
