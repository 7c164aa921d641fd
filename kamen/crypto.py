"""The secrets vault: AES-256-GCM at rest, a key id on every value, a keyed blind index.

KAMEN_ENCRYPTION_KEYS holds "kid:base64(32 bytes)" entries; the last one encrypts and every one
decrypts, so keys rotate without downtime. KAMEN_BLIND_INDEX_KEY keys an HMAC-SHA256 that lets
Kamen find a duplicate secret without decrypting anything. In the embedded default (no
keys configured) keys are generated once into var/keys.json; real mode refuses to start without.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

NONCE_BYTES = 12
BLOCK_BYTES = 64  # SHA-256 block size, for HMAC
_IPAD = bytes(byte ^ 0x36 for byte in range(256))
_OPAD = bytes(byte ^ 0x5C for byte in range(256))


class DecryptionError(Exception):
    """A value could not be decrypted: unknown key id, wrong key or tampered data."""


def _decode_key(kid: str, encoded: str) -> bytes:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(f"encryption key {kid!r} is not valid base64") from None
    if len(raw) != 32:
        raise ImproperlyConfigured(f"encryption key {kid!r} must be 32 bytes, got {len(raw)}")
    return raw


def load_or_create_keys_file(path) -> tuple[dict, bool]:
    """This machine's vault keys from ``path``, made once (0600, never overwritten: losing the
    file makes what was stored with it unreadable). Used by the embedded default and by a local
    real-mode run (scripts/local_keys.py); production sets the keys in its environment."""
    from pathlib import Path

    path = Path(path)
    if path.exists():
        return json.loads(path.read_text()), False
    stored = {
        "encryption_keys": "e1:" + base64.b64encode(os.urandom(32)).decode(),
        "blind_index_key": base64.b64encode(os.urandom(32)).decode(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(stored, handle)
    return stored, True


def _embedded_keys() -> tuple[str, str]:
    stored, _created = load_or_create_keys_file(settings.KAMEN_KEYS_FILE)
    return stored["encryption_keys"], stored["blind_index_key"]


@lru_cache(maxsize=1)
def _keyring() -> tuple[dict[str, AESGCM], str, bytes]:
    encryption_keys, blind_key = settings.KAMEN_ENCRYPTION_KEYS, settings.KAMEN_BLIND_INDEX_KEY
    if not encryption_keys or not blind_key:
        if not settings.IS_EMBEDDED_DATABASE:
            raise ImproperlyConfigured(
                "Set KAMEN_ENCRYPTION_KEYS and KAMEN_BLIND_INDEX_KEY (see .env.example) before storing secrets."
            )
        encryption_keys, blind_key = _embedded_keys()
    ciphers: dict[str, AESGCM] = {}
    current = ""
    for entry in encryption_keys.split(","):
        kid, separator, encoded = entry.strip().partition(":")
        if not separator or not kid:
            raise ImproperlyConfigured("KAMEN_ENCRYPTION_KEYS entries look like kid:base64key")
        ciphers[kid] = AESGCM(_decode_key(kid, encoded))
        current = kid
    return ciphers, current, _decode_key("blind-index", blind_key)


def reset_keyring() -> None:
    """Forget cached keys (tests, and after the settings change)."""
    _keyring.cache_clear()


def current_key_id() -> str:
    return _keyring()[1]


def encrypt(plaintext: str, *, associated_data: bytes = b"") -> tuple[str, bytes]:
    ciphers, kid, _blind = _keyring()
    nonce = os.urandom(NONCE_BYTES)
    return kid, nonce + ciphers[kid].encrypt(nonce, plaintext.encode("utf-8"), associated_data or None)


def encrypt_many(plaintexts: Sequence[str], *, associated_data: bytes = b"") -> tuple[str, list[bytes]]:
    """Encrypt many values under the newest key, each with its own random nonce, exactly as
    ``encrypt`` would: one key look-up and one read of the random source for the lot (bulk
    import encrypts 100,000 secrets in one go)."""
    ciphers, kid, _blind = _keyring()
    seal = ciphers[kid].encrypt
    aad = associated_data or None
    nonces = os.urandom(NONCE_BYTES * len(plaintexts))
    blobs = []
    append = blobs.append
    offset = 0
    for plaintext in plaintexts:
        nonce = nonces[offset : offset + NONCE_BYTES]
        offset += NONCE_BYTES
        append(nonce + seal(nonce, plaintext.encode("utf-8"), aad))
    return kid, blobs


def decrypt(*, key_id: str, blob: bytes, associated_data: bytes = b"") -> str:
    ciphers = _keyring()[0]
    cipher = ciphers.get(key_id)
    if cipher is None:
        raise DecryptionError(f"no encryption key with id {key_id!r} is configured")
    blob = bytes(blob)
    try:
        plaintext = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data or None)
    except (InvalidTag, ValueError):
        raise DecryptionError(f"value under key {key_id!r} failed authentication (wrong key or tampered)") from None
    return plaintext.decode("utf-8")


def blind_index(value: str) -> str:
    """Keyed hash for equality look-ups; reveals nothing without the key."""
    return hmac.digest(_keyring()[2], value.encode("utf-8"), "sha256").hex()


def blind_index_many(values: Sequence[str]) -> list[str]:
    """``blind_index`` of each value, in order, for bulk import (100,000 values in one go).

    HMAC-SHA256 exactly as RFC 2104 and ``hmac`` define it, written out over hashlib: the keyed
    inner and outer hash states are computed once and copied for every value, which costs a
    third less than copying an ``hmac`` object per value (that wrapper is Python code)."""
    key = _keyring()[2]
    if len(key) > BLOCK_BYTES:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK_BYTES, b"\x00")
    inner_copy = hashlib.sha256(key.translate(_IPAD)).copy
    outer_copy = hashlib.sha256(key.translate(_OPAD)).copy
    fingerprints = []
    append = fingerprints.append
    for value in values:
        inner = inner_copy()
        inner.update(value.encode("utf-8"))
        outer = outer_copy()
        outer.update(inner.digest())
        append(outer.hexdigest())
    return fingerprints
