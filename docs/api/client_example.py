"""A docking site's client of Kamen's open API, standard library only: sign and send a request.

    python docs/api/client_example.py https://shop.example.com ak_xxx SECRET GET /api/v1/balance
    python docs/api/client_example.py https://shop.example.com ak_xxx SECRET POST /api/v1/orders \
        '{"product_id": 1, "quantity": 1, "client_order_no": "MY-0001"}'

Prints the HTTP status and the JSON answer. The signature (docs/api/openapi.json, "Signing"):
hex(HMAC-SHA256(secret, METHOD \\n path \\n sorted query \\n timestamp \\n nonce \\n hex(SHA-256(body)))).
"""

import hashlib
import hmac
import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qsl, quote, urlsplit


def canonical_query(query: str) -> str:
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='-._~')}={quote(v, safe='-._~')}" for k, v in pairs)


def sign(*, secret: str, method: str, path: str, query: str, body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(16)  # never reuse one: a repeated nonce is refused as a replay
    canonical = "\n".join(
        [method.upper(), path, canonical_query(query), timestamp, nonce, hashlib.sha256(body).hexdigest()]
    )
    signature = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return {"X-Kamen-Timestamp": timestamp, "X-Kamen-Nonce": nonce, "X-Kamen-Signature": signature}


def call(base_url: str, key_id: str, secret: str, method: str, path_and_query: str, payload: dict | None = None):
    """(status, JSON body) of one signed request."""
    url = base_url.rstrip("/") + path_and_query
    parts = urlsplit(url)
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = {"X-Kamen-Key-Id": key_id, "Content-Type": "application/json"}
    headers |= sign(secret=secret, method=method, path=parts.path, query=parts.query, body=body)
    request = urllib.request.Request(url, data=body if method != "GET" else None, headers=headers, method=method)  # noqa: S310 (the base URL the user gave)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


if __name__ == "__main__":
    base, key, secret_value, http_method, target = sys.argv[1:6]
    data = json.loads(sys.argv[6]) if len(sys.argv) > 6 else None
    status, answer = call(base, key, secret_value, http_method, target, data)
    print(json.dumps({"status": status, "body": answer}, ensure_ascii=False))
