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


def unreadable_secret() -> str:
    """'' when this process's vault keys open the newest stored secret of every registered
    column, else which one they cannot open and why. ``make run`` checks this before serving:
    keys that do not belong to the database (``var/keys.json`` lost or made anew beside an
    older PostgreSQL database) would sell card keys nobody can read and fail every order page
    that shows one. One row per column: a quick look, not an audit."""
    from kamen import crypto

    for field in _REGISTRY:
        row = (
            field.model.objects.exclude(**{field.key_field: ""})
            .filter(**{f"{field.blob_field}__isnull": False})
            .order_by("-pk")
            .first()
        )
        blob = bytes(getattr(row, field.blob_field) or b"") if row is not None else b""
        if not blob:
            continue
        try:
            crypto.decrypt(
                key_id=getattr(row, field.key_field), blob=blob, associated_data=field.associated_data_for(row)
            )
        except crypto.DecryptionError as error:
            return f"{field.model._meta.label}.{field.blob_field} (id {row.pk}): {error}"
    return ""
