"""The order query password (查单密码): hashed at checkout, checked by the buyer look-up.

Why not the project's password hasher: it is PBKDF2 with Django's 1,000,000 iterations, about
half a second of CPU per checkout on a small server, which alone would cap the shop at a few
orders per second per core. That cost is what protects a *login* password whose hash leaks
with the database. The query password is different: it opens one order, the look-up is
rate-limited and locks out (ORDER_LOOKUP_MAX_ATTEMPTS), and with 4-character minimums no
iteration count would make a leaked hash safe anyway. What does make it safe is a key the
database does not hold: the hash is HMAC-SHA256 under the blind-index key (environment, never
stored; the same key that already guards the card-key fingerprints), over a per-order random
salt, domain-separated from other uses. A stolen database alone then gives an attacker nothing
to brute-force offline, and a checkout pays microseconds, not half a second.

``ORDER_QUERY_PASSWORD_HASHER = "project"`` goes back to the project's PASSWORD_HASHERS.
Hashes written either way (and those written before this) keep verifying.
"""

from django.conf import settings
from django.contrib.auth.hashers import BasePasswordHasher, check_password, make_password
from django.utils.crypto import constant_time_compare, get_random_string

from kamen import crypto

__all__ = ["KeyedQueryPasswordHasher", "check_query_password", "hash_query_password"]

_DOMAIN = "orders.query-password"


class KeyedQueryPasswordHasher(BasePasswordHasher):
    """HMAC-SHA256(blind-index key, domain | salt | password), stored as ``algorithm$salt$hex``."""

    algorithm = "kamen_keyed_sha256"

    def salt(self) -> str:
        return get_random_string(22)

    def encode(self, password: str, salt: str) -> str:
        self._check_encode_args(password, salt)
        digest = crypto.blind_index(f"{_DOMAIN}|{salt}|{password}")
        return f"{self.algorithm}${salt}${digest}"

    def decode(self, encoded: str) -> dict:
        algorithm, salt, digest = encoded.split("$", 2)
        if algorithm != self.algorithm:
            raise ValueError("not a keyed query-password hash")
        return {"algorithm": algorithm, "hash": digest, "salt": salt}

    def verify(self, password: str, encoded: str) -> bool:
        decoded = self.decode(encoded)
        return constant_time_compare(encoded, self.encode(password, decoded["salt"]))

    def safe_summary(self, encoded: str) -> dict:
        decoded = self.decode(encoded)
        return {"algorithm": decoded["algorithm"], "salt": decoded["salt"][:4] + "…", "hash": decoded["hash"][:6] + "…"}

    def must_update(self, encoded: str) -> bool:
        return False

    def harden_runtime(self, password: str, encoded: str) -> None:
        pass


_KEYED = KeyedQueryPasswordHasher()


def hash_query_password(password: str) -> str:
    if getattr(settings, "ORDER_QUERY_PASSWORD_HASHER", "keyed") == "project":
        return make_password(password)
    return _KEYED.encode(password, _KEYED.salt())


def check_query_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches; hashes of either kind verify whatever the setting."""
    if not encoded:
        return False
    if encoded.startswith(_KEYED.algorithm + "$"):
        return _KEYED.verify(password, encoded)
    return check_password(password, encoded)
