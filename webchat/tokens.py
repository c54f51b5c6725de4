"""Signed, short-lived credentials of the public API (django.core.signing).

- The init challenge, issued by `config`, is bound to a site and an origin, expires after
  CHALLENGE_TTL and is single-use: its nonce is consumed atomically in the shared cache
  (SET NX), so a replay is refused on every web instance.
- The session token, issued by `init`, is bound to site, session, visitor, conversation
  and origin and expires after WEBCHAT_SESSION_TTL.
- Optional proof-of-work (ALTCHA-style) makes bulk session creation expensive for bots.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.utils import timezone

from webchat.exceptions import ChallengeInvalid, TokenExpired, TokenInvalid

CHALLENGE_SALT = "replybase.webchat.challenge"
SESSION_SALT = "replybase.webchat.session"
POW_ALGORITHM = "SHA-256"


def challenge_ttl() -> int:
    return settings.WEBCHAT_CHALLENGE_TTL


def session_ttl() -> int:
    return settings.WEBCHAT_SESSION_TTL


@dataclass(frozen=True)
class IssuedChallenge:
    token: str
    expires_at: datetime
    pow: dict | None


def challenge_issue(*, site_id: int, origin: str, pow_difficulty: int) -> IssuedChallenge:
    pow_salt = secrets.token_hex(12) if pow_difficulty else ""
    payload = {
        "s": site_id,
        "n": secrets.token_urlsafe(12),
        "o": origin,
        "p": pow_salt,
        "d": pow_difficulty,
    }
    token = signing.dumps(payload, salt=CHALLENGE_SALT)
    pow_info = (
        {"algorithm": POW_ALGORITHM, "difficulty": pow_difficulty, "salt": pow_salt}
        if pow_difficulty
        else None
    )
    return IssuedChallenge(token, timezone.now() + timedelta(seconds=challenge_ttl()), pow_info)


def challenge_consume(*, token: str, site_id: int, origin: str, pow_solution: int | None) -> None:
    """Verify the challenge and use it up; raise ChallengeInvalid saying why not."""
    try:
        payload = signing.loads(token, salt=CHALLENGE_SALT, max_age=challenge_ttl())
    except signing.SignatureExpired as exc:
        raise ChallengeInvalid("The init challenge has expired. Fetch config again.") from exc
    except signing.BadSignature as exc:
        raise ChallengeInvalid("The init challenge is not valid.") from exc
    if not isinstance(payload, dict) or payload.get("s") != site_id:
        raise ChallengeInvalid("The init challenge was issued for another site.")
    if payload.get("o") != origin:
        raise ChallengeInvalid("The init challenge was issued for another origin.")
    difficulty = payload.get("d") or 0
    if difficulty and (
        pow_solution is None or not pow_verify(payload["p"], pow_solution, difficulty)
    ):
        raise ChallengeInvalid("The proof-of-work solution is missing or wrong.")
    if not cache.add(f"webchat:challenge-used:{payload['n']}", 1, challenge_ttl() + 30):
        raise ChallengeInvalid("The init challenge was already used. Fetch config again.")


def _leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte == 0:
            bits += 8
            continue
        return bits + 8 - byte.bit_length()
    return bits


def pow_verify(salt: str, number: int, difficulty: int) -> bool:
    if number < 0 or number > 2**40:
        return False
    digest = hashlib.sha256(f"{salt}{number}".encode()).digest()
    return _leading_zero_bits(digest) >= difficulty


def pow_solve(salt: str, difficulty: int) -> int:
    """The smallest solution (for tests, the benchmark and server-side clients)."""
    number = 0
    while not pow_verify(salt, number, difficulty):
        number += 1
    return number


@dataclass(frozen=True)
class SessionClaims:
    session_id: int
    site_id: int
    visitor_id: str
    conversation_id: int
    origin: str
    # The site's tenant, so a request can fetch its rollout decision together with the
    # site (None in tokens issued before it was added: those fetch it separately).
    tenant_id: int | None = None


def session_token_issue(claims: SessionClaims) -> tuple[str, datetime]:
    payload = {
        "ss": claims.session_id,
        "st": claims.site_id,
        "v": claims.visitor_id,
        "c": claims.conversation_id,
        "o": claims.origin,
    }
    if claims.tenant_id is not None:
        payload["tn"] = claims.tenant_id
    token = signing.dumps(payload, salt=SESSION_SALT, compress=True)
    return token, timezone.now() + timedelta(seconds=session_ttl())


def session_token_read(token: str, *, max_age: int | None = None) -> SessionClaims:
    """Decode a session token; raise TokenExpired / TokenInvalid."""
    if not token or len(token) > 1024:
        raise TokenInvalid()
    try:
        payload = signing.loads(token, salt=SESSION_SALT, max_age=max_age or session_ttl())
        return SessionClaims(
            session_id=int(payload["ss"]),
            site_id=int(payload["st"]),
            visitor_id=str(payload["v"]),
            conversation_id=int(payload["c"]),
            origin=str(payload["o"]),
            tenant_id=int(payload["tn"]) if "tn" in payload else None,
        )
    except signing.SignatureExpired as exc:
        raise TokenExpired() from exc
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise TokenInvalid() from exc


def identity_hash(secret: str, user_id: str) -> str:
    """What the tenant's server computes: hex HMAC-SHA256(site secret, user_id)."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def identity_verify(secret: str, user_id: str, user_hash: str) -> bool:
    # Compare bytes: compare_digest refuses non-ASCII str, and a visitor may send anything.
    expected = identity_hash(secret, user_id).encode()
    return bool(secret) and hmac.compare_digest(expected, user_hash.lower().encode())
