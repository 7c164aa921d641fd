"""Signing of the open API's requests and webhooks (docs/adr/0019), for both ends.

    canonical = METHOD \\n path \\n canonical query \\n timestamp \\n nonce \\n hex(SHA-256(body))
    signature = hex(HMAC-SHA256(secret, canonical))

sent in the headers below. The canonical query is the query string's pairs sorted and
percent-encoded again (RFC 3986), so a proxy that reorders or re-encodes it does not break the
signature. The newlines keep the fields from sliding into each other. The timestamp is Unix
seconds; the receiver refuses one outside ``MAX_CLOCK_SKEW_SECONDS`` and a nonce it has seen
before. Webhooks are signed the same way (method POST, the receiver's path and query).
"""

import hashlib
import hmac
import secrets
import time
from urllib.parse import parse_qsl, quote, urlsplit

MAX_CLOCK_SKEW_SECONDS = 300

HEADER_KEY_ID = "X-Kamen-Key-Id"
HEADER_TIMESTAMP = "X-Kamen-Timestamp"
HEADER_NONCE = "X-Kamen-Nonce"
HEADER_SIGNATURE = "X-Kamen-Signature"
HEADER_EVENT_ID = "X-Kamen-Event-Id"

NONCE_MIN, NONCE_MAX = 16, 64


def canonical_query(query: str) -> str:
    pairs = sorted(parse_qsl(query or "", keep_blank_values=True))
    return "&".join(f"{quote(name, safe='-._~')}={quote(value, safe='-._~')}" for name, value in pairs)


def canonical_request(*, method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join(
        [method.upper(), path, canonical_query(query), timestamp, nonce, hashlib.sha256(body or b"").hexdigest()]
    ).encode("utf-8")


def compute_signature(
    *, secret: str, method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes
) -> str:
    message = canonical_request(method=method, path=path, query=query, timestamp=timestamp, nonce=nonce, body=body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_headers(
    *,
    key_id: str,
    secret: str,
    method: str,
    url: str,
    body: bytes = b"",
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign one request to ``url`` (path and query are taken from it)."""
    parts = urlsplit(url)
    timestamp = str(int(now if now is not None else time.time()))
    nonce = nonce or secrets.token_hex(16)
    signature = compute_signature(
        secret=secret,
        method=method,
        path=parts.path or "/",
        query=parts.query,
        timestamp=timestamp,
        nonce=nonce,
        body=body,
    )
    return {HEADER_KEY_ID: key_id, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce, HEADER_SIGNATURE: signature}


def signatures_match(expected: str, given: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(expected.encode(), (given or "").encode())


def timestamp_is_fresh(timestamp: str, *, now: float | None = None) -> bool:
    if not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(int(timestamp) - (now if now is not None else time.time())) <= MAX_CLOCK_SKEW_SECONDS


def nonce_is_well_formed(nonce: str) -> bool:
    return NONCE_MIN <= len(nonce) <= NONCE_MAX and all(c.isascii() and (c.isalnum() or c in "-_") for c in nonce)
