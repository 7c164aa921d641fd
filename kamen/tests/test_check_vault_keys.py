"""make run refuses to serve when its vault keys are not the ones the database's secrets were
stored under (var/keys.json re-created beside an older database): otherwise every order page
showing a card key was a 500 and new sales handed out keys nobody could read."""

import base64

import pytest
from django.core.management import CommandError, call_command

from kamen import crypto
from orders.tests.factories import add_keys, make_product

THIS = "e1:" + base64.b64encode(b"a" * 32).decode()
OTHER = "e1:" + base64.b64encode(b"b" * 32).decode()  # same id, another machine's key


@pytest.fixture(autouse=True)
def fresh_keyring():
    crypto.reset_keyring()
    yield
    crypto.reset_keyring()


@pytest.mark.django_db
def test_keys_that_do_not_open_the_stored_secrets_stop_the_start_with_a_clear_message(settings):
    settings.KAMEN_ENCRYPTION_KEYS = THIS
    add_keys(make_product(), 2)
    crypto.reset_keyring()
    settings.KAMEN_ENCRYPTION_KEYS = OTHER

    with pytest.raises(CommandError) as refused:
        call_command("check_vault_keys")

    message = str(refused.value)
    assert "do not open the secrets stored in this database" in message
    assert "keys.json" in message and "catalog.CardKey" in message
    assert base64.b64encode(b"b" * 32).decode() not in message  # never the key itself


@pytest.mark.django_db
def test_the_right_keys_and_an_empty_database_pass(settings):
    settings.KAMEN_ENCRYPTION_KEYS = THIS
    call_command("check_vault_keys")  # nothing stored yet

    add_keys(make_product(), 2)
    call_command("check_vault_keys")
