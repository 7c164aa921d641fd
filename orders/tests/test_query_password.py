"""The order query password: keyed hash by default, older hashes still verify, bad guesses fail."""

import pytest
from django.contrib.auth.hashers import make_password

from kamen import crypto
from orders.services.lookup import LookupFailed, lookup_orders
from orders.services.query_password import check_query_password, hash_query_password

from .factories import add_keys, buy, make_product


def test_the_keyed_hash_is_salted_and_checks_only_the_right_password():
    first, second = hash_query_password("pass1234"), hash_query_password("pass1234")

    assert first.startswith("kamen_keyed_sha256$") and "pass1234" not in first
    assert first != second  # a salt per order
    assert check_query_password("pass1234", first) and check_query_password("pass1234", second)
    assert not check_query_password("pass1235", first)
    assert not check_query_password("pass1234", "")


def test_the_hash_depends_on_a_key_the_database_does_not_hold(settings):
    encoded = hash_query_password("pass1234")

    settings.KAMEN_BLIND_INDEX_KEY = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDA="
    crypto.reset_keyring()
    try:
        assert not check_query_password("pass1234", encoded)
    finally:
        crypto.reset_keyring()


def test_hashes_written_by_the_project_hasher_still_verify(settings):
    older = make_password("pass1234")
    settings.ORDER_QUERY_PASSWORD_HASHER = "project"

    assert check_query_password("pass1234", older)
    assert not hash_query_password("pass1234").startswith("kamen_keyed_sha256$")


@pytest.mark.django_db
def test_a_buyer_looks_an_order_up_with_the_keyed_password():
    product = make_product()
    add_keys(product, 1)
    order = buy(product, contact="keyed@example.com")

    assert [found.pk for found in lookup_orders(order_no=order.order_no, password="pass1234", ip="10.0.0.9")] == [
        order.pk
    ]
    with pytest.raises(LookupFailed):
        lookup_orders(order_no=order.order_no, password="wrong-pass", ip="10.0.0.9")
