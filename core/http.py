"""What every outbound HTTP call shares (Chatwoot, alerts, the LLM engine).

`httpx.get()`/`httpx.request()` build a client per call, and with it a TLS context that
loads the whole CA bundle: ~30 ms of CPU each, which a health check of thousands of
connections pays thousands of times. One context serves every call (an `ssl.SSLContext`
is safe to share between threads). It trusts what httpx's default did: SSL_CERT_FILE or
SSL_CERT_DIR when set (a private CA, e.g. a self-hosted Chatwoot's), else certifi's bundle.
"""

import functools
import os
import ssl

import certifi


@functools.cache
def tls_context() -> ssl.SSLContext:
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())
