from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied

from catalog.models import CardKey, CardKeyBatch, Category, Product, ProductType
from catalog.services import reveal_card_key_secret
from kamen import crypto
from kamen.models import AuditLogEntry

SECRET = "REVEAL-ME-4242"


@pytest.fixture
def card_key(db):
    category = Category.objects.create(name="点卡", slug="cards")
    product = Product.objects.create(
        category=category, name="Steam 50", product_type=ProductType.CARD_KEY, retail_price=Decimal("48.00")
    )
    key_id, blob = crypto.encrypt(SECRET)
    return CardKey.objects.create(
        product=product,
        batch=CardKeyBatch.objects.create(product=product, key_count=1),
        card_no="NO123456789",
        secret_ciphertext=blob,
        key_id=key_id,
        fingerprint=crypto.blind_index(f"NO123456789\x00{SECRET}"),
    )


@pytest.fixture
def revealer(owner_user):
    return owner_user


def test_staff_with_the_permission_see_the_secret_and_the_reveal_is_audited(card_key, revealer):
    assert reveal_card_key_secret(card_key=card_key, actor=revealer) == SECRET

    entry = AuditLogEntry.objects.get(action="card_keys.secret_revealed")
    assert entry.actor == revealer
    assert SECRET not in str(entry.changes) + entry.target_repr


def test_staff_without_the_permission_are_refused_and_nothing_is_logged_as_revealed(card_key, staff_user):
    with pytest.raises(PermissionDenied):
        reveal_card_key_secret(card_key=card_key, actor=staff_user)

    assert not AuditLogEntry.objects.filter(action="card_keys.secret_revealed").exists()


def test_the_reveal_page_decrypts_only_on_post(client, card_key, revealer):
    client.force_login(revealer)

    page = client.get(f"/console/card-keys/{card_key.pk}/reveal/")
    revealed = client.post(f"/console/card-keys/{card_key.pk}/reveal/")

    assert SECRET not in page.content.decode()
    assert SECRET in revealed.content.decode()
    assert "no-store" in revealed["Cache-Control"] or "no-cache" in revealed["Cache-Control"]


def test_an_operator_without_the_permission_gets_403(client, card_key, staff_user):
    client.force_login(staff_user)

    assert client.post(f"/console/card-keys/{card_key.pk}/reveal/").status_code == 403


def test_admin_list_pages_never_show_secrets(client, card_key, revealer):
    client.force_login(revealer)

    for url in ["/admin/catalog/cardkey/", f"/admin/catalog/cardkey/{card_key.pk}/change/", "/admin/catalog/cardkeybatch/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode()
        assert "NO123456789" not in response.content.decode()  # the card number is masked too


def test_a_role_granted_the_permission_can_reveal(card_key, staff_user):
    Group.objects.get(name="risk").permissions.add(Permission.objects.get(codename="reveal_cardkey_secret"))
    staff_user.groups.add(Group.objects.get(name="risk"))
    staff_user = type(staff_user).objects.get(pk=staff_user.pk)  # fresh permission cache

    assert reveal_card_key_secret(card_key=card_key, actor=staff_user) == SECRET
