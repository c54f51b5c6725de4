import time
from dataclasses import replace

import pytest
from django.core import signing
from django.test import override_settings

from webchat.exceptions import ChallengeInvalid, TokenExpired, TokenInvalid
from webchat.tokens import (
    SESSION_SALT,
    SessionClaims,
    challenge_consume,
    challenge_issue,
    identity_hash,
    identity_verify,
    pow_solve,
    pow_verify,
    session_token_issue,
    session_token_read,
)

CLAIMS = SessionClaims(
    session_id=7,
    site_id=3,
    visitor_id="v" * 32,
    conversation_id=11,
    origin="https://a.test",
    tenant_id=5,
)


def test_a_token_from_before_the_tenant_claim_still_reads():
    old = replace(CLAIMS, tenant_id=None)
    token, _ = session_token_issue(old)
    assert session_token_read(token) == old


def test_session_token_roundtrip():
    token, expires_at = session_token_issue(CLAIMS)
    assert session_token_read(token) == CLAIMS
    assert expires_at.tzinfo is not None


def test_session_token_tampered_is_invalid():
    token, _ = session_token_issue(CLAIMS)
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    with pytest.raises(TokenInvalid):
        session_token_read(tampered)
    # a token signed for a different purpose (salt) is refused too
    forged = signing.dumps(
        {"ss": 1, "st": 3, "v": "x", "c": 1, "o": "https://a.test"}, salt="other"
    )
    with pytest.raises(TokenInvalid):
        session_token_read(forged)


def test_session_token_expiry():
    with override_settings(WEBCHAT_SESSION_TTL=1):
        token, _ = session_token_issue(CLAIMS)
        time.sleep(2.1)
        with pytest.raises(TokenExpired):
            session_token_read(token)
        # a resume may still read it within the longer resume window
        assert session_token_read(token, max_age=60).session_id == 7


def test_session_token_signed_with_another_key_is_invalid():
    token, _ = session_token_issue(CLAIMS)
    with override_settings(SECRET_KEY="a-different-secret"), pytest.raises(TokenInvalid):
        session_token_read(token)


@pytest.mark.parametrize("junk", ["", "x" * 2000, "abc", "a:b:c", "signed-list"])
def test_session_token_junk_is_invalid(junk):
    if junk == "signed-list":  # validly signed, but not a claims object
        junk = signing.dumps([1, 2], salt=SESSION_SALT)
    with pytest.raises(TokenInvalid):
        session_token_read(junk)


def test_challenge_is_single_use():
    issued = challenge_issue(site_id=3, origin="https://a.test", pow_difficulty=0)
    assert issued.pow is None
    challenge_consume(token=issued.token, site_id=3, origin="https://a.test", pow_solution=None)
    with pytest.raises(ChallengeInvalid, match="already used"):
        challenge_consume(token=issued.token, site_id=3, origin="https://a.test", pow_solution=None)


def test_challenge_bound_to_site_and_origin():
    issued = challenge_issue(site_id=3, origin="https://a.test", pow_difficulty=0)
    with pytest.raises(ChallengeInvalid, match="another site"):
        challenge_consume(token=issued.token, site_id=4, origin="https://a.test", pow_solution=None)
    with pytest.raises(ChallengeInvalid, match="another origin"):
        challenge_consume(token=issued.token, site_id=3, origin="https://b.test", pow_solution=None)
    # failed attempts did not burn it
    challenge_consume(token=issued.token, site_id=3, origin="https://a.test", pow_solution=None)


def test_challenge_expires():
    with override_settings(WEBCHAT_CHALLENGE_TTL=1):
        issued = challenge_issue(site_id=3, origin="https://a.test", pow_difficulty=0)
        time.sleep(2.1)
        with pytest.raises(ChallengeInvalid, match="expired"):
            challenge_consume(
                token=issued.token, site_id=3, origin="https://a.test", pow_solution=None
            )


def test_challenge_forged_is_invalid():
    with pytest.raises(ChallengeInvalid, match="not valid"):
        challenge_consume(
            token="forged:token", site_id=3, origin="https://a.test", pow_solution=None
        )


def test_proof_of_work():
    issued = challenge_issue(site_id=3, origin="https://a.test", pow_difficulty=10)
    assert issued.pow["algorithm"] == "SHA-256"
    salt = issued.pow["salt"]
    solution = pow_solve(salt, 10)
    assert pow_verify(salt, solution, 10)
    assert not all(pow_verify(salt, n, 10) for n in range(solution))
    with pytest.raises(ChallengeInvalid, match="proof-of-work"):
        challenge_consume(token=issued.token, site_id=3, origin="https://a.test", pow_solution=None)
    wrong = next(n for n in range(10_000) if not pow_verify(salt, n, 10))
    with pytest.raises(ChallengeInvalid, match="proof-of-work"):
        challenge_consume(
            token=issued.token, site_id=3, origin="https://a.test", pow_solution=wrong
        )
    challenge_consume(token=issued.token, site_id=3, origin="https://a.test", pow_solution=solution)


def test_identity_hash():
    digest = identity_hash("s3cret", "user-42")
    assert len(digest) == 64
    assert identity_verify("s3cret", "user-42", digest)
    assert identity_verify("s3cret", "user-42", digest.upper())
    assert not identity_verify("s3cret", "user-43", digest)
    assert not identity_verify("", "user-42", identity_hash("", "user-42"))
    assert not identity_verify("s3cret", "user-42", "é" * 64)  # non-ASCII: refused, no crash
