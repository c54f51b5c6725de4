"""Small formatting filters for the rollout and monitoring screens."""

from django import template

register = template.Library()


@register.filter
def percent(value, digits: int = 1) -> str:
    """0.0123 → "1.2%"; None → "–"."""
    if value is None or value == "":
        return "–"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def gate_value(value, metric: str) -> str:
    """A gate metric as people read it: seconds for the reply time, percent for rates."""
    if value is None:
        return "–"
    if metric == "p95_reply_seconds":
        return f"{float(value):.1f} s"
    return percent(value)


@register.filter
def get(mapping, key):
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def duration(seconds) -> str:
    """Seconds → "42 s", "7 min", "3 h", "2 d"."""
    if seconds is None:
        return "never"
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{seconds // 60} min"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


@register.filter
def shown(value) -> str:
    """An audit value as text: empty and missing values read as "none"."""
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)
