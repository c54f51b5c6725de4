"""Which web origins may embed a site's widget.

A rule is `[scheme://]host[:port]`:
- `example.com`           the exact host, http or https, any port;
- `*.example.com`         any subdomain of example.com (not example.com itself);
- `https://shop.example.com:8443`  exact scheme, host and port;
- `localhost:*`           any port (the same as `localhost`);
- `*`                     anything: refused when WEBCHAT_ALLOW_ANY_ORIGIN is off (production).
Matching is case-insensitive and exact on labels: `evil-example.com` never matches
`example.com`, and `example.com.evil.net` never matches `*.example.com`.
"""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.text import ascii_digits

_HOST_RE = re.compile(r"^(\*\.)?([a-z0-9-]+\.)*[a-z0-9-]+$|^\[[0-9a-f:]+\]$")


class InvalidRule(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    scheme: str | None  # None: http or https
    host: str  # lowercase, without the "*." of a wildcard
    wildcard: bool
    port: int | None  # None: any port

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        if self.scheme is not None and scheme != self.scheme:
            return False
        if self.scheme is None and scheme not in ("http", "https"):
            return False
        if self.port is not None and port != self.port:
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


def parse_rule(raw: str) -> Rule | None:
    """Parse one rule; None means "any origin". Raises InvalidRule with a readable reason."""
    text = raw.strip().lower()
    if not text:
        raise InvalidRule("An empty domain is not allowed.")
    if text == "*":
        return None
    scheme = None
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme not in ("http", "https"):
            raise InvalidRule(f"{raw!r}: only http and https origins can embed the widget.")
    if "/" in text or "?" in text or "#" in text or "@" in text:
        raise InvalidRule(f"{raw!r}: give a domain, not a URL with a path.")
    host, port = text, None
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[: end + 1], text[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else None
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
    else:
        port_text = None
    if port_text is not None and port_text != "*":
        if not ascii_digits(port_text) or not 0 < int(port_text) < 65536:
            raise InvalidRule(f"{raw!r}: the port must be a number from 1 to 65535 or *.")
        port = int(port_text)
    if not _HOST_RE.match(host):
        raise InvalidRule(f"{raw!r} is not a valid domain (wildcards only as a leading '*.').")
    wildcard = host.startswith("*.")
    if wildcard:
        host = host[2:]
        if "." not in host:
            raise InvalidRule(
                f"{raw!r}: a wildcard needs a registrable domain, like *.example.com."
            )
    return Rule(scheme=scheme, host=host, wildcard=wildcard, port=port)


def validate_rules(raw_rules: list[str], *, allow_any: bool) -> list[str]:
    """Clean a list of rules for storage; raise InvalidRule for the first bad one."""
    cleaned = []
    for raw in raw_rules:
        if not isinstance(raw, str):
            raise InvalidRule("Each domain must be text.")
        if parse_rule(raw) is None and not allow_any:
            raise InvalidRule("A bare '*' (any website) is not allowed here; list your domains.")
        value = raw.strip().lower()
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


def split_origin(origin: str) -> tuple[str, str, int | None] | None:
    """('https', 'shop.example.com', 443) from an Origin header value, or None if malformed."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname.lower().rstrip("."), port


def origin_of_url(url: str) -> str | None:
    """The origin (scheme://host[:port]) of a Referer-style URL."""
    try:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return None
    return f"{parts.scheme}://{netloc}"


def _stored_rules(rules) -> list[Rule | None]:
    """The parsed rules of one site as stored (None: "any origin"); what is not a list, not
    a non-empty string or not a valid rule (a row written around the forms) is skipped."""
    if not isinstance(rules, list | tuple):
        return []
    parsed = []
    for raw in rules:
        if not isinstance(raw, str) or not raw.strip():
            continue
        try:
            parsed.append(parse_rule(raw))
        except InvalidRule:
            continue  # a bad stored rule never allows anything
    return parsed


@dataclass(frozen=True)
class OriginIndex:
    """Every site's rules at once, for "does any site allow this origin?" (CORS): looked up
    by the origin's host and its parent domains, never a scan of every rule."""

    exact: dict[str, tuple[Rule, ...]]
    wildcard: dict[str, tuple[Rule, ...]]  # by the domain under the "*."
    any_origin: bool  # some site allows "*"

    @classmethod
    def of(cls, rule_lists) -> "OriginIndex":
        exact: dict[str, list[Rule]] = {}
        wildcard: dict[str, list[Rule]] = {}
        any_origin = False
        for rules in rule_lists:
            for rule in _stored_rules(rules):
                if rule is None:
                    any_origin = True
                else:
                    (wildcard if rule.wildcard else exact).setdefault(rule.host, []).append(rule)
        return cls(
            exact={host: tuple(found) for host, found in exact.items()},
            wildcard={host: tuple(found) for host, found in wildcard.items()},
            any_origin=any_origin,
        )

    def allows(self, origin: str | None, *, allow_any: bool) -> bool:
        """What `origin_allowed` answers for some site's rules."""
        split = split_origin(origin) if origin else None
        if split is None:
            return False
        if self.any_origin and allow_any:
            return True
        scheme, host, port = split
        if any(rule.matches(scheme, host, port) for rule in self.exact.get(host, ())):
            return True
        labels = host.split(".")
        for start in range(1, len(labels)):
            parent = ".".join(labels[start:])
            if any(rule.matches(scheme, host, port) for rule in self.wildcard.get(parent, ())):
                return True
        return False


def origin_allowed(origin: str | None, rules: list[str], *, allow_any: bool) -> bool:
    """Does one site's stored rules allow this origin? Rules are read as stored: a value that
    is not a list, or a rule that is not a non-empty string (a row written around the
    forms), allows nothing and never raises, so one bad row cannot break other sites."""
    if not origin:
        return False
    split = split_origin(origin)
    if split is None:
        return False
    scheme, host, port = split
    for rule in _stored_rules(rules):
        if rule is None:
            if allow_any:
                return True
            continue
        if rule.matches(scheme, host, port):
            return True
    return False
