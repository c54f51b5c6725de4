"""`core.alerts.webhook_text_post` reports every failure as text and never raises."""

import pytest

from core.alerts import webhook_text_post

UNUSABLE_URLS = [
    "http://[::1",  # httpx.InvalidURL, not an httpx.HTTPError
    "http://[zz]/hook",
    "http://exa\x00mple.com/hook",
    "http://" + "a" * 64 + ".example.com/hook",  # a host label too long for IDNA: ValueError
    "not a url",
    "",
]


@pytest.mark.parametrize("url", UNUSABLE_URLS)
def test_an_unusable_url_is_a_failure_not_an_exception(url):
    error = webhook_text_post(url=url, text="hello", timeout=0.5, sender="test")
    assert isinstance(error, str) and error
    assert len(error) <= 500
