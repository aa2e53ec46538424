"""Hashcash for the public tip form: a signed challenge, a nonce found by the browser. Pure.

The server signs `<case>.<expires>.<salt>.<bits>` with a key derived from the secret key; the
page's script (alerts/tips/static/tips_public.js) counts nonces until
SHA-256(`<challenge>:<nonce>`) starts with `bits` zero bits (about 2**bits hashes, a second
or two on a phone at 18 bits) and sends the nonce with the tip. The server checks the
signature, the case, the expiry and the hash; the caller makes each challenge single-use
(Redis, alerts.tips.public). No third party, no cookie, no tracking.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass


class ProofRefused(ValueError):
    """The challenge or nonce does not prove the work; the message is safe to show."""


def _key(secret: str) -> bytes:
    return hashlib.sha256(b"reunite tip challenge v1\x00" + secret.encode()).digest()


def _sign(secret: str, body: str) -> str:
    return hmac.new(_key(secret), body.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Challenge:
    text: str
    bits: int
    expires: int


def issue(secret: str, case_id: str, bits: int, now: float, ttl_s: int) -> Challenge:
    """A new challenge for one case, valid ttl_s seconds."""
    expires = int(now) + ttl_s
    body = f"{case_id}.{expires}.{secrets.token_hex(8)}.{bits}"
    return Challenge(f"{body}.{_sign(secret, body)}", bits, expires)


def leading_zero_bits(digest: bytes) -> int:
    """How many zero bits the digest starts with."""
    count = 0
    for byte in digest:
        if byte == 0:
            count += 8
            continue
        return count + 8 - byte.bit_length()
    return count


def solve(challenge: str, bits: int) -> int:
    """The first nonce that proves the work (what the browser does; tests and benchmarks)."""
    nonce = 0
    while leading_zero_bits(hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()) < bits:
        nonce += 1
    return nonce


def verify(secret: str, challenge: str, nonce: str, case_id: str, min_bits: int, now: float) -> str:
    """Check a solved challenge for this case; returns its signature (the single-use key)."""
    parts = challenge.split(".")
    if len(parts) != 5:
        raise ProofRefused("the anti-abuse challenge is malformed; reload the page")
    case, expires, _salt, bits, signature = parts
    body = ".".join(parts[:4])
    if not hmac.compare_digest(_sign(secret, body), signature):
        raise ProofRefused("the anti-abuse challenge is not ours; reload the page")
    if case != case_id:
        raise ProofRefused("the anti-abuse challenge is for another alert; reload the page")
    if not expires.isdigit() or int(expires) < now:
        raise ProofRefused("the anti-abuse challenge has expired; send the tip again")
    if not bits.isdigit() or int(bits) < min_bits:
        raise ProofRefused("the anti-abuse challenge is too easy; reload the page")
    if not nonce.isdigit() or len(nonce) > 16:
        raise ProofRefused("the anti-abuse proof is missing")
    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    if leading_zero_bits(digest) < int(bits):
        raise ProofRefused("the anti-abuse proof is wrong")
    return signature
