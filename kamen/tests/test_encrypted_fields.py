"""Every secret column is rotated: none is forgotten, and each decrypts with its own context."""

import base64
import io

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import models

from kamen import crypto
from kamen.encrypted_fields import encrypted_fields

OLD = "old:" + base64.b64encode(b"o" * 32).decode()
NEW = "new:" + base64.b64encode(b"n" * 32).decode()


@pytest.fixture(autouse=True)
def fresh_keyring():
    crypto.reset_keyring()
    yield
    crypto.reset_keyring()


def test_every_ciphertext_column_of_every_app_is_registered_for_rotation():
    registered = {(field.model, field.blob_field) for field in encrypted_fields()}
    columns = {
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, models.BinaryField) and field.name.endswith("_ciphertext")
    }
    assert columns - registered == set()


@pytest.mark.django_db
def test_rotation_re_encrypts_a_supplier_secret_with_its_own_context(settings):
    from catalog.services import create_supplier
    from catalog.suppliers import client_for

    settings.KAMEN_ENCRYPTION_KEYS = OLD
    supplier = create_supplier(
        actor=None,
        name="上游一号",
        adapter="sandbox",
        base_url="http://127.0.0.1:8000/sandbox/supplier/",
        app_id="app-1",
        app_secret="a-supplier-secret-of-some-length",
    )
    crypto.reset_keyring()
    settings.KAMEN_ENCRYPTION_KEYS = f"{OLD},{NEW}"

    call_command("rotate_encryption_keys", stdout=io.StringIO())

    supplier.refresh_from_db()
    assert supplier.app_secret_key_id == "new"
    crypto.reset_keyring()
    settings.KAMEN_ENCRYPTION_KEYS = NEW  # the old key is gone: the secret must still open
    assert client_for(supplier)._app_secret == "a-supplier-secret-of-some-length"
