import base64
import hashlib
import hmac
import os

import pytest
from django.core.exceptions import ImproperlyConfigured

from kamen import crypto

OLD = "old:" + base64.b64encode(b"o" * 32).decode()
NEW = "new:" + base64.b64encode(b"n" * 32).decode()


@pytest.fixture(autouse=True)
def fresh_keyring():
    crypto.reset_keyring()
    yield
    crypto.reset_keyring()


def test_a_secret_round_trips_and_is_not_stored_in_plaintext():
    key_id, blob = crypto.encrypt("CDKEY-1234-ABCD")

    assert b"CDKEY" not in blob
    assert crypto.decrypt(key_id=key_id, blob=blob) == "CDKEY-1234-ABCD"


def test_the_same_secret_encrypts_differently_each_time_but_indexes_the_same():
    first, second = crypto.encrypt("same")[1], crypto.encrypt("same")[1]

    assert first != second
    assert crypto.blind_index("same") == crypto.blind_index("same")
    assert crypto.blind_index("same") != crypto.blind_index("Same")


def test_bulk_fingerprints_are_the_same_hmac_as_single_ones(settings):
    """A key imported in bulk must be found as a duplicate when added one at a time, and back."""
    settings.KAMEN_ENCRYPTION_KEYS = NEW
    settings.KAMEN_BLIND_INDEX_KEY = base64.b64encode(b"b" * 32).decode()
    values = ["", "CARD-1\x00SECRET-1", "卡号\x00密码ü", "x" * 300]

    expected = [hmac.new(b"b" * 32, value.encode(), hashlib.sha256).hexdigest() for value in values]
    assert crypto.blind_index_many(values) == expected == [crypto.blind_index(value) for value in values]


def test_the_newest_key_encrypts_and_older_keys_still_decrypt(settings):
    settings.KAMEN_ENCRYPTION_KEYS = OLD
    old_id, old_blob = crypto.encrypt("legacy")
    crypto.reset_keyring()
    settings.KAMEN_ENCRYPTION_KEYS = f"{OLD},{NEW}"

    new_id, _blob = crypto.encrypt("fresh")

    assert (old_id, new_id, crypto.current_key_id()) == ("old", "new", "new")
    assert crypto.decrypt(key_id=old_id, blob=old_blob) == "legacy"


def test_a_tampered_value_is_refused_without_revealing_it():
    key_id, blob = crypto.encrypt("top-secret-key")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])

    with pytest.raises(crypto.DecryptionError) as error:
        crypto.decrypt(key_id=key_id, blob=tampered)
    assert "top-secret" not in str(error.value)


def test_associated_data_binds_a_value_to_its_row():
    key_id, blob = crypto.encrypt("bound", associated_data=b"card_key:1")

    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(key_id=key_id, blob=blob, associated_data=b"card_key:2")


def test_an_unknown_key_id_is_a_clear_error():
    _key_id, blob = crypto.encrypt("x")

    with pytest.raises(crypto.DecryptionError, match="no encryption key with id 'gone'"):
        crypto.decrypt(key_id="gone", blob=blob)


@pytest.mark.parametrize("bad", ["nokid", "k1:not-base64!!", "k1:" + base64.b64encode(b"short").decode()])
def test_malformed_keys_are_refused_with_a_clear_message(settings, bad):
    settings.KAMEN_ENCRYPTION_KEYS = bad

    with pytest.raises(ImproperlyConfigured):
        crypto.encrypt("x")


def test_real_mode_without_keys_refuses_to_store_secrets(settings):
    settings.KAMEN_ENCRYPTION_KEYS = ""
    settings.IS_EMBEDDED_DATABASE = False

    with pytest.raises(ImproperlyConfigured, match="KAMEN_ENCRYPTION_KEYS"):
        crypto.encrypt("x")


def test_embedded_mode_generates_keys_once_into_a_private_file(settings, tmp_path):
    settings.KAMEN_ENCRYPTION_KEYS = ""
    settings.KAMEN_BLIND_INDEX_KEY = ""
    settings.IS_EMBEDDED_DATABASE = True
    settings.KAMEN_KEYS_FILE = tmp_path / "keys.json"
    key_id, blob = crypto.encrypt("demo")
    crypto.reset_keyring()

    assert crypto.decrypt(key_id=key_id, blob=blob) == "demo"
    assert oct(os.stat(settings.KAMEN_KEYS_FILE).st_mode & 0o777) == "0o600"
