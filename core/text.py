"""Message text as people type it: one cleaning rule and one limit for every writer
(visitors through the widget API, staff from the dashboard)."""

import re

# C0/C1 control characters except tab and newline, and Unicode bidi overrides.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MAX_TEXT = 4000


def clean_text(value: str) -> str:
    """Control characters (NUL included) stripped, not refused; CRLF as LF; trimmed."""
    return _CONTROL_RE.sub("", value).replace("\r\n", "\n").strip()


def ascii_digits(value: str) -> bool:
    """Only 0-9 (at least one). Not `str.isdigit()`: it also takes "²", which int() refuses,
    and "١٢", which int() reads as 12."""
    return value.isascii() and value.isdigit()
