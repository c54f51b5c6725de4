"""Secrets at rest (API keys of outside services) are encrypted with Fernet.

The key comes from FIELD_ENCRYPTION_KEY, or is derived from SECRET_KEY when that is unset,
so rotating SECRET_KEY without setting FIELD_ENCRYPTION_KEY makes stored secrets unreadable
(they then read as empty and must be entered again).
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@cache
def _fernet() -> Fernet:
    configured = getattr(settings, "FIELD_ENCRYPTION_KEY", "")
    if configured:
        return Fernet(configured)
    digest = hashlib.sha256(("field-encryption:" + settings.SECRET_KEY).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return ""
