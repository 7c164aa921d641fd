import base64
import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from catalog.models import CardKey, CardKeyBatch, Category, Product, ProductType
from kamen import crypto

OLD = "old:" + base64.b64encode(b"o" * 32).decode()
NEW = "new:" + base64.b64encode(b"n" * 32).decode()


@pytest.fixture(autouse=True)
def fresh_keyring():
    crypto.reset_keyring()
    yield
    crypto.reset_keyring()


def stock_under_old_key(settings, count):
    settings.KAMEN_ENCRYPTION_KEYS = OLD
    category = Category.objects.create(name="点卡", slug="cards")
    product = Product.objects.create(
        category=category, name="Steam", product_type=ProductType.CARD_KEY, retail_price=Decimal("1.00")
    )
    batch = CardKeyBatch.objects.create(product=product, key_count=count)
    for number in range(count):
        key_id, blob = crypto.encrypt(f"SECRET-{number}")
        CardKey.objects.create(
            product=product, batch=batch, secret_ciphertext=blob, key_id=key_id, fingerprint=crypto.blind_index(str(number))
        )
    crypto.reset_keyring()
    settings.KAMEN_ENCRYPTION_KEYS = f"{OLD},{NEW}"


@pytest.mark.django_db
def test_rotation_moves_every_secret_to_the_newest_key_and_keeps_it_readable(settings):
    stock_under_old_key(settings, 7)

    call_command("rotate_encryption_keys", batch_size=3, stdout=io.StringIO())

    assert set(CardKey.objects.values_list("key_id", flat=True)) == {"new"}
    crypto.reset_keyring()
    settings.KAMEN_ENCRYPTION_KEYS = NEW  # the old key can now be retired
    secrets = sorted(crypto.decrypt(key_id=k.key_id, blob=k.secret_ciphertext) for k in CardKey.objects.all())
    assert secrets == sorted(f"SECRET-{n}" for n in range(7))


@pytest.mark.django_db
def test_a_second_run_has_nothing_left_to_do(settings):
    stock_under_old_key(settings, 2)
    call_command("rotate_encryption_keys", stdout=io.StringIO())

    output = io.StringIO()
    call_command("rotate_encryption_keys", stdout=output)

    assert "catalog.CardKey.secret_ciphertext: 0 re-encrypted" in output.getvalue()
