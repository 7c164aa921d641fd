"""Request signing shared by the sandbox client and the sandbox server.

signature = hex(HMAC-SHA256(secret, app_id + "\\n" + timestamp + "\\n" + nonce + "\\n" + body)),
sent in the X-Kamen-App-Id / -Timestamp / -Nonce / -Signature headers. The newlines keep the
fields from sliding into each other ("ab"+"c" vs "a"+"bc").
"""

import hashlib
import hmac
import secrets
import time

MAX_CLOCK_SKEW_SECONDS = 300

HEADER_APP_ID = "X-Kamen-App-Id"
HEADER_TIMESTAMP = "X-Kamen-Timestamp"
HEADER_NONCE = "X-Kamen-Nonce"
HEADER_SIGNATURE = "X-Kamen-Signature"


def compute_signature(*, secret: str, app_id: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = b"\n".join([app_id.encode(), timestamp.encode(), nonce.encode(), body])
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_headers(*, secret: str, app_id: str, body: bytes, now: float | None = None, nonce: str | None = None) -> dict[str, str]:
    timestamp = str(int(now if now is not None else time.time()))
    nonce = nonce or secrets.token_hex(16)
    return {
        "Content-Type": "application/json",
        HEADER_APP_ID: app_id,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: compute_signature(secret=secret, app_id=app_id, timestamp=timestamp, nonce=nonce, body=body),
    }


def signatures_match(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), (given or "").encode())
