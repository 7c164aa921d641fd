"""Where every app keeps ciphertext, so one command can rotate them all.

Each app lists its encrypted columns in its ``AppConfig.ready()`` with
``register_encrypted_field``; ``manage.py rotate_encryption_keys`` re-encrypts every registered
column to the newest key. A new secret column that is not registered here would keep an old
key alive forever, so tests check that every BinaryField named ``*_ciphertext`` is registered.
"""

from collections.abc import Callable
from dataclasses import dataclass

AssociatedData = bytes | Callable[[object], bytes]


@dataclass(frozen=True)
class EncryptedField:
    model: type
    blob_field: str
    key_field: str
    associated_data: AssociatedData = b""

    def associated_data_for(self, row) -> bytes:
        if callable(self.associated_data):
            return self.associated_data(row)
        return self.associated_data


_REGISTRY: list[EncryptedField] = []


def register_encrypted_field(model, blob_field: str, key_field: str, associated_data: AssociatedData = b"") -> None:
    entry = EncryptedField(model, blob_field, key_field, associated_data)
    if not any(e.model is model and e.blob_field == blob_field for e in _REGISTRY):
        _REGISTRY.append(entry)


def encrypted_fields() -> list[EncryptedField]:
    return list(_REGISTRY)
