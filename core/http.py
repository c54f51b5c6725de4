"""What every outbound HTTP call shares (Chatwoot, alerts, the LLM engine).

`httpx.get()`/`httpx.request()` build a client per call, and with it a TLS context that
loads the whole CA bundle: ~30 ms of CPU each, which a health check of thousands of
connections pays thousands of times. One context serves every call (an `ssl.SSLContext`
is safe to share between threads).
"""

import functools
import ssl

import certifi


@functools.cache
def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())
