"""Invitation and referral codes: drawn from an alphabet people can read aloud and type."""

import secrets

CODE_ALPHABET = (
    "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed
)


def new_code(length: int = 8) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def normalize_code(raw) -> str:
    return "".join(str(raw or "").split()).upper()[:24]
