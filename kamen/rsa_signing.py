"""RSA signing shared by the payment gateways (orders) and the payout adapters (commissions).

Alipay signs with RSA2 (SHA256withRSA, PKCS#1 v1.5, base64) over the sorted ``k=v&…`` string of
a request's parameters, and answers with the exact raw JSON text of the ``…_response`` node
signed by its own key. WeChat Pay v3 signs ``METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nBODY\\n`` with
the merchant's key (the ``WECHATPAY2-SHA256-RSA2048`` header) and answers signed with its
platform key over ``TIMESTAMP\\nNONCE\\nBODY\\n``. Both adapters' apps import these from here,
the bottom layer, so neither has to import the other.

Errors are plain: ``ValueError``/``TypeError`` for unreadable keys, ``SignatureMismatch`` for a
signature that does not verify. Each adapter turns them into its own exceptions.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kamen.parsing import is_ascii_digits

# WeChat's own SDKs refuse answers signed more than five minutes away from now.
MAX_CLOCK_SKEW_SECONDS = 300


class SignatureMismatch(ValueError):
    """A signature that is missing, not canonical base64, or does not verify."""


class TransportFailure(OSError):
    """The provider could not be reached (connection refused, timeout, reset)."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


Transport = Callable[[str, str, Mapping[str, str], bytes | None], HttpResponse]


def urllib_transport(method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> HttpResponse:
    """urllib with a 10 s timeout; an HTTP error status is an answer, no answer is TransportFailure."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - provider URLs are configured
            return HttpResponse(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return HttpResponse(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise TransportFailure(f"unreachable: {error.__class__.__name__}") from None


# --- keys -----------------------------------------------------------------------------------------
def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """A PEM private key, or the bare base64 (PKCS#8 or PKCS#1 DER) the Alipay key tool prints."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = serialization.load_der_private_key(base64.b64decode("".join(text.split())), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error):
        raise ValueError("not a readable RSA private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("not an RSA private key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """A PEM public key or certificate, or the bare base64 DER public key the console shows."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN CERTIFICATE"):
            key = x509.load_pem_x509_certificate(text.encode()).public_key()
        elif text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split())))
    except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error):
        raise ValueError("not a readable RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError("not an RSA public key")
    return key


def load_platform_key(text: str) -> rsa.RSAPublicKey:
    """A WeChat Pay platform certificate PEM or a WeChat Pay public key PEM."""
    if text.strip().startswith("-----BEGIN CERTIFICATE"):
        try:
            key = x509.load_pem_x509_certificate(text.strip().encode()).public_key()
        except ValueError:
            raise ValueError("not a readable certificate") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise TypeError("not an RSA certificate")
        return key
    return load_public_key(text)


# --- RSA2 (SHA256withRSA) -------------------------------------------------------------------------
def sign_content(params: Mapping[str, str], *, exclude: tuple[str, ...] = ("sign",), skip_empty: bool = True) -> str:
    """The string Alipay signs: ``k=v`` pairs sorted by key, joined by ``&``, values not encoded."""
    return "&".join(
        f"{key}={params[key]}" for key in sorted(params) if key not in exclude and (params[key] != "" or not skip_empty)
    )


def rsa2_sign(private_key: rsa.RSAPrivateKey, content: str | bytes) -> str:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return base64.b64encode(private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_verify(public_key: rsa.RSAPublicKey, content: bytes, signature: str) -> None:
    """Raise SignatureMismatch unless ``signature`` is a canonical base64 RSA2 signature of ``content``.

    Canonical: re-encoding the decoded bytes gives the same text. Lenient base64 ignores the
    spare bits of the last character, which would let a tampered signature still verify.
    """
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureMismatch("the signature is not base64") from None
    if not raw or base64.b64encode(raw).decode() != signature:
        raise SignatureMismatch("the signature is not canonical base64")
    try:
        public_key.verify(raw, content, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise SignatureMismatch("the signature does not verify with the provider's public key") from None


# --- Alipay answers -------------------------------------------------------------------------------
def extract_response_node(body: str, node: str) -> tuple[str | None, str | None]:
    """Return (raw JSON text of ``node``, ``sign``) from a top-level JSON object, exactly as sent.

    Walks the top-level members with the JSON decoder so a key that merely appears inside some
    string value is never mistaken for the node. Raises ValueError on anything malformed.
    """
    decoder = json.JSONDecoder()
    text = body.strip()
    if not text.startswith("{"):
        raise ValueError("not a JSON object")
    position, raw_node, signature = 1, None, None
    try:
        while True:
            position = _skip_whitespace(text, position)
            if text[position] == "}":
                break
            key, position = decoder.raw_decode(text, position)
            position = _skip_whitespace(text, position)
            if text[position] != ":":
                raise ValueError("expected a colon")
            start = _skip_whitespace(text, position + 1)
            value, position = decoder.raw_decode(text, start)
            if key == node:
                raw_node = text[start:position]
            elif key == "sign" and isinstance(value, str):
                signature = value
            position = _skip_whitespace(text, position)
            if text[position] == ",":
                position += 1
            elif text[position] != "}":
                raise ValueError("expected a comma")
    except (ValueError, IndexError):
        raise ValueError("malformed JSON") from None
    return raw_node, signature


def _skip_whitespace(text: str, position: int) -> int:
    while text[position] in " \t\r\n":
        position += 1
    return position


# --- WeChat Pay v3 --------------------------------------------------------------------------------
def wechatpay_authorization(
    *, private_key: rsa.RSAPrivateKey, mch_id: str, serial_no: str, method: str, url_path: str, body: str
) -> str:
    """The Authorization header for one request (``url_path`` includes the query string)."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    message = f"{method}\n{url_path}\n{timestamp}\n{nonce}\n{body}\n"
    return (
        f'WECHATPAY2-SHA256-RSA2048 mchid="{mch_id}",nonce_str="{nonce}",'
        f'signature="{rsa2_sign(private_key, message)}",timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def wechatpay_verify(platform_keys: Mapping[str, rsa.RSAPublicKey], headers: Mapping[str, str], body: bytes) -> None:
    """Raise SignatureMismatch unless WeChat signed ``body`` recently with a known platform key."""
    headers = {key.lower(): value for key, value in headers.items()}
    timestamp = headers.get("wechatpay-timestamp", "")
    nonce = headers.get("wechatpay-nonce", "")
    signature = headers.get("wechatpay-signature", "")
    serial = headers.get("wechatpay-serial", "")
    if not (timestamp and nonce and signature and serial):
        raise SignatureMismatch("the WeChat Pay signature headers are missing")
    if serial.startswith("WECHATPAY/SIGNTEST/"):
        raise SignatureMismatch("WeChat Pay signature probe")  # merchants must reject it
    public_key = platform_keys.get(serial)
    if public_key is None:
        raise SignatureMismatch("signed with an unknown platform certificate serial")
    if not is_ascii_digits(timestamp) or abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise SignatureMismatch("the signature timestamp is stale or in the future (replay?)")
    rsa2_verify(public_key, timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n", signature)


def rsa_oaep_encrypt(public_key: rsa.RSAPublicKey, text: str) -> str:
    """WeChat Pay's sensitive-field encryption (RSAES-OAEP, SHA-1 and MGF1-SHA-1), base64."""
    ciphertext = public_key.encrypt(
        text.encode("utf-8"),
        padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303
    )
    return base64.b64encode(ciphertext).decode()
