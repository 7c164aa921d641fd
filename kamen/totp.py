"""TOTP (RFC 6238): HMAC-SHA1, 30-second steps, 6 digits — what every authenticator app does.

``verify`` accepts the current step and one either side (clock drift) and returns the step the
code belongs to, so the caller can refuse a code whose step was already used (a replay).
"""

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

from kamen.parsing import is_ascii_digits

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1


def new_secret() -> str:
    """160 random bits, base32 without padding (what authenticator apps expect)."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    padded = secret.upper() + "=" * (-len(secret) % 8)
    return base64.b32decode(padded)


def hotp(secret: str, counter: int) -> str:
    """RFC 4226: dynamic truncation of HMAC-SHA1(key, counter)."""
    digest = hmac.new(_key(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % (
        10**DIGITS
    )
    return f"{code:0{DIGITS}d}"


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP_SECONDS)


def totp(secret: str, now: float | None = None) -> str:
    return hotp(secret, current_step(now))


def verify(
    secret: str, code: str, *, now: float | None = None, after_step: int = 0
) -> int | None:
    """The step ``code`` is valid for (newer than ``after_step``), or None."""
    code = "".join(str(code or "").split())
    if len(code) != DIGITS or not is_ascii_digits(code):
        return None
    step = current_step(now)
    for candidate in range(step - DRIFT_STEPS, step + DRIFT_STEPS + 1):
        if candidate > after_step and hmac.compare_digest(
            hotp(secret, candidate), code
        ):
            return candidate
    return None


def provisioning_uri(secret: str, *, account: str, issuer: str = "Kamen") -> str:
    label = quote(f"{issuer}:{account}")
    query = urlencode(
        {
            "secret": secret,
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP_SECONDS,
        }
    )
    return f"otpauth://totp/{label}?{query}"
