from pathlib import Path

import certifi

from core.http import tls_context


def test_tls_context_trusts_ssl_cert_file_as_httpx_did(tmp_path, monkeypatch):
    # httpx's own default context honours SSL_CERT_FILE (a private CA for a self-hosted
    # Chatwoot, say): the shared one must trust the same certificates.
    bundle = Path(certifi.where()).read_text()
    first = bundle[bundle.index("-----BEGIN CERTIFICATE-----") :]
    first = first[: first.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    cafile = tmp_path / "ca.pem"
    cafile.write_text(first + "\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(cafile))
    tls_context.cache_clear()
    try:
        assert len(tls_context().get_ca_certs()) == 1
    finally:
        monkeypatch.delenv("SSL_CERT_FILE")
        tls_context.cache_clear()
