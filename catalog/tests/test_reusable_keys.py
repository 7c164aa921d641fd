"""Reusable card keys (循环卡密): one shared secret, encrypted, sold up to a cap."""

import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from catalog.models import Category, Product, ProductType, ReusableCardKey, StockAlert
from catalog.selectors import is_reusable_key_product, reusable_key_remaining
from catalog.services import (
    InsufficientStock,
    activate_reusable_key,
    check_stock_level,
    claim_reusable_key,
    deactivate_reusable_key,
    set_reusable_key_cap,
    set_reusable_key_secret,
)
from kamen import crypto
from kamen.models import AuditLogEntry

SECRET = "https://pan.example.com/s/SHARED-TUTORIAL-7788"


def make_product(product_type=ProductType.CARD_KEY, threshold=0) -> Product:
    category, _ = Category.objects.get_or_create(slug="tutorials", defaults={"name": "教程"})
    return Product.objects.create(
        category=category,
        name=f"教程 {Product.objects.count()}",
        product_type=product_type,
        retail_price=Decimal("9.90"),
        is_on_shelf=True,
        low_stock_threshold=threshold,
    )


def make_reusable(*, cap=None, actor=None, secret=SECRET) -> ReusableCardKey:
    product = make_product()
    reusable = set_reusable_key_secret(product=product, secret=secret, actor=actor)
    if cap is not None:
        set_reusable_key_cap(reusable_key=reusable, sales_cap=cap, actor=actor)
    return reusable


def audit_text() -> str:
    return " ".join(
        f"{entry.action} {entry.target_repr} {entry.changes}" for entry in AuditLogEntry.objects.all()
    )


# --- the secret -------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_secret_is_encrypted_at_rest_and_the_audit_never_holds_it(staff_user):
    product = make_product()

    reusable = set_reusable_key_secret(product=product, secret=f"  {SECRET}  ", actor=staff_user)

    stored = ReusableCardKey.objects.get(pk=reusable.pk)
    assert SECRET.encode() not in bytes(stored.secret_ciphertext)
    assert crypto.decrypt(key_id=stored.key_id, blob=stored.secret_ciphertext) == SECRET
    entry = AuditLogEntry.objects.get(action="catalog.reusable_key.create")
    assert entry.actor == staff_user
    assert SECRET not in audit_text()


@pytest.mark.django_db
def test_replacing_the_secret_keeps_cap_and_count_and_buyers_get_the_new_one(staff_user):
    reusable = make_reusable(cap=10, actor=staff_user)
    claim_reusable_key(product=reusable.product, quantity=3, reference="A1")

    set_reusable_key_secret(product=reusable.product, secret="NEW-LINK-1", actor=staff_user)

    reusable.refresh_from_db()
    assert (reusable.sales_cap, reusable.sold_count) == (10, 3)
    assert claim_reusable_key(product=reusable.product, quantity=1, reference="A2") == "NEW-LINK-1"
    assert AuditLogEntry.objects.filter(action="catalog.reusable_key.secret_replaced").count() == 1
    assert "NEW-LINK-1" not in audit_text()


@pytest.mark.django_db
@pytest.mark.parametrize("secret", ["", "   ", None, "x" * 4001])
def test_an_empty_or_oversized_secret_is_refused_and_nothing_is_saved(staff_user, secret):
    product = make_product()

    with pytest.raises(ValidationError) as error:
        set_reusable_key_secret(product=product, secret=secret, actor=staff_user)

    assert "secret" in error.value.message_dict
    assert not ReusableCardKey.objects.exists()


@pytest.mark.django_db
def test_only_card_key_products_can_have_a_reusable_key(staff_user):
    product = make_product(product_type=ProductType.MANUAL)

    with pytest.raises(ValidationError, match="只有卡密类商品"):
        set_reusable_key_secret(product=product, secret=SECRET, actor=staff_user)

    assert not ReusableCardKey.objects.exists()


@pytest.mark.django_db
def test_staff_without_the_permission_cannot_set_a_secret(django_user_model):
    finance = django_user_model.objects.create_user(username="finance", password="x", is_staff=True)
    finance.groups.add(Group.objects.get(name="finance"))

    with pytest.raises(PermissionDenied):
        set_reusable_key_secret(product=make_product(), secret=SECRET, actor=finance)

    assert not ReusableCardKey.objects.exists()


# --- the cap ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_claims_count_against_the_cap_and_return_the_secret():
    reusable = make_reusable(cap=5)

    delivered = claim_reusable_key(product=reusable.product, quantity=2, reference="ORDER-1")

    reusable.refresh_from_db()
    assert delivered == SECRET
    assert reusable.sold_count == 2
    assert reusable_key_remaining(reusable.product) == 3


@pytest.mark.django_db
def test_a_claim_past_the_cap_is_refused_and_counts_nothing():
    reusable = make_reusable(cap=5)
    claim_reusable_key(product=reusable.product, quantity=4, reference="ORDER-1")

    with pytest.raises(InsufficientStock) as error:
        claim_reusable_key(product=reusable.product, quantity=2, reference="ORDER-2")

    reusable.refresh_from_db()
    assert (error.value.wanted, error.value.available) == (2, 1)
    assert reusable.sold_count == 4


@pytest.mark.django_db
def test_the_last_unit_under_the_cap_can_be_sold():
    reusable = make_reusable(cap=3)

    claim_reusable_key(product=reusable.product, quantity=3, reference="ORDER-1")

    reusable.refresh_from_db()
    assert reusable.sold_count == 3
    assert reusable_key_remaining(reusable.product) == 0


@pytest.mark.django_db
def test_without_a_cap_sales_are_unlimited():
    reusable = make_reusable()

    claim_reusable_key(product=reusable.product, quantity=1000, reference="BULK")

    reusable.refresh_from_db()
    assert reusable.sold_count == 1000
    assert reusable_key_remaining(reusable.product) is None


@pytest.mark.django_db
@pytest.mark.parametrize("quantity", [0, -1, True, 1.5])
def test_a_claim_of_a_nonsense_quantity_is_refused(quantity):
    reusable = make_reusable(cap=5)

    with pytest.raises(ValueError):
        claim_reusable_key(product=reusable.product, quantity=quantity, reference="X")

    reusable.refresh_from_db()
    assert reusable.sold_count == 0


@pytest.mark.django_db
def test_a_cap_change_is_audited_with_before_and_after(staff_user):
    reusable = make_reusable(cap=10, actor=staff_user)

    set_reusable_key_cap(reusable_key=reusable, sales_cap="25", actor=staff_user)

    reusable.refresh_from_db()
    assert reusable.sales_cap == 25
    entry = AuditLogEntry.objects.filter(action="catalog.reusable_key.cap_change").latest("id")
    assert entry.changes["sales_cap"] == [10, 25]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("cap", "message"),
    [
        (3, "低于已售数量 5"),
        (0, "至少为 1"),
        (-2, "至少为 1"),
        ("abc", "必须是整数"),
        (2.5, "必须是整数"),
    ],
)
def test_a_bad_cap_is_refused_with_a_clear_message_and_nothing_changes(staff_user, cap, message):
    reusable = make_reusable(cap=10, actor=staff_user)
    claim_reusable_key(product=reusable.product, quantity=5, reference="ORDER-1")
    audit_rows = AuditLogEntry.objects.count()

    with pytest.raises(ValidationError) as error:
        set_reusable_key_cap(reusable_key=reusable, sales_cap=cap, actor=staff_user)

    reusable.refresh_from_db()
    assert message in " ".join(error.value.message_dict["sales_cap"])
    assert (reusable.sales_cap, reusable.sold_count) == (10, 5)
    assert AuditLogEntry.objects.count() == audit_rows


@pytest.mark.django_db
def test_a_blank_cap_means_unlimited(staff_user):
    reusable = make_reusable(cap=10, actor=staff_user)

    set_reusable_key_cap(reusable_key=reusable, sales_cap="", actor=staff_user)

    reusable.refresh_from_db()
    assert reusable.sales_cap is None


# --- active or not ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_deactivated_key_sells_nothing_and_the_product_is_no_longer_reusable(staff_user):
    reusable = make_reusable(cap=10, actor=staff_user)
    assert is_reusable_key_product(reusable.product)

    deactivate_reusable_key(reusable_key=reusable, actor=staff_user)

    product = Product.objects.get(pk=reusable.product_id)
    assert not is_reusable_key_product(product)
    with pytest.raises(InsufficientStock):
        claim_reusable_key(product=product, quantity=1, reference="ORDER-1")
    assert AuditLogEntry.objects.filter(action="catalog.reusable_key.deactivated").count() == 1


@pytest.mark.django_db
def test_reactivating_sells_again(staff_user):
    reusable = make_reusable(cap=10, actor=staff_user)
    deactivate_reusable_key(reusable_key=reusable, actor=staff_user)

    activate_reusable_key(reusable_key=reusable, actor=staff_user)

    assert is_reusable_key_product(Product.objects.get(pk=reusable.product_id))
    assert claim_reusable_key(product=reusable.product, quantity=1, reference="ORDER-1") == SECRET


@pytest.mark.django_db
def test_a_product_without_a_reusable_key_is_not_reusable():
    product = make_product()

    assert not is_reusable_key_product(product)
    with pytest.raises(InsufficientStock):
        claim_reusable_key(product=product, quantity=1, reference="ORDER-1")


# --- stock alerts -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_room_under_the_cap_is_watched_by_the_low_stock_threshold():
    product = make_product(threshold=2)
    reusable = set_reusable_key_secret(product=product, secret=SECRET, actor=None)
    set_reusable_key_cap(reusable_key=reusable, sales_cap=5, actor=None)
    assert check_stock_level(product=product) is None

    claim_reusable_key(product=product, quantity=3, reference="ORDER-1")
    alert = check_stock_level(product=product)

    assert (alert.available_count, alert.threshold) == (2, 2)


@pytest.mark.django_db
def test_an_unlimited_reusable_key_never_raises_a_low_stock_alert():
    product = make_product(threshold=10)
    set_reusable_key_secret(product=product, secret=SECRET, actor=None)

    check_stock_level(product=product)

    assert not StockAlert.objects.exists()


# --- concurrency ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_thirty_two_concurrent_buyers_never_pass_the_cap():
    reusable = make_reusable(cap=20)
    product = reusable.product
    delivered: list[str] = []
    refused: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(32)

    def buyer(number: int):
        try:
            start.wait()
            try:
                secret = claim_reusable_key(product=product, quantity=1, reference=f"ORDER-{number}")
            except InsufficientStock:
                with lock:
                    refused.append(number)
            else:
                with lock:
                    delivered.append(secret)
        finally:
            connection.close()

    threads = [threading.Thread(target=buyer, args=(number,)) for number in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    reusable.refresh_from_db()
    assert reusable.sold_count == 20
    assert delivered == [SECRET] * 20
    assert len(refused) == 12


@pytest.mark.django_db(transaction=True)
def test_concurrent_multi_unit_buyers_fill_the_cap_exactly():
    reusable = make_reusable(cap=50)
    product = reusable.product
    counted: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(30)

    def buyer(number: int):
        quantity = 1 + number % 3
        try:
            start.wait()
            try:
                claim_reusable_key(product=product, quantity=quantity, reference=f"ORDER-{number}")
            except InsufficientStock:
                return
            with lock:
                counted.append(quantity)
        finally:
            connection.close()

    threads = [threading.Thread(target=buyer, args=(number,)) for number in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    reusable.refresh_from_db()
    assert reusable.sold_count == sum(counted)
    assert reusable.sold_count <= 50


# --- the console ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_staff_enter_the_secret_write_only_in_the_console(client, staff_user):
    product = make_product()
    client.force_login(staff_user)

    created = client.post(
        "/admin/catalog/reusablecardkey/add/",
        {"product": product.pk, "new_secret": SECRET, "sales_cap": "100", "is_active": "on"},
    )
    reusable = ReusableCardKey.objects.get(product=product)
    change_page = client.get(f"/admin/catalog/reusablecardkey/{reusable.pk}/change/")
    list_page = client.get("/admin/catalog/reusablecardkey/")

    assert created.status_code == 302
    assert (reusable.sales_cap, reusable.is_active) == (100, True)
    assert crypto.decrypt(key_id=reusable.key_id, blob=reusable.secret_ciphertext) == SECRET
    assert SECRET not in change_page.content.decode()
    assert SECRET not in list_page.content.decode()
    assert SECRET not in audit_text()


@pytest.mark.django_db
def test_the_console_refuses_a_cap_below_sold_and_keeps_the_secret_when_left_blank(client, staff_user):
    reusable = make_reusable(cap=10, actor=staff_user)
    claim_reusable_key(product=reusable.product, quantity=6, reference="ORDER-1")
    client.force_login(staff_user)
    url = f"/admin/catalog/reusablecardkey/{reusable.pk}/change/"

    refused = client.post(url, {"new_secret": "", "sales_cap": "4", "is_active": "on"})
    accepted = client.post(url, {"new_secret": "", "sales_cap": "8", "is_active": "on"})

    reusable.refresh_from_db()
    assert refused.status_code == 200
    assert "低于已售数量 6" in refused.content.decode()
    assert accepted.status_code == 302
    assert reusable.sales_cap == 8
    assert crypto.decrypt(key_id=reusable.key_id, blob=reusable.secret_ciphertext) == SECRET


@pytest.mark.django_db
def test_the_console_requires_a_secret_for_a_new_reusable_key(client, staff_user):
    product = make_product()
    client.force_login(staff_user)

    response = client.post(
        "/admin/catalog/reusablecardkey/add/", {"product": product.pk, "new_secret": "", "sales_cap": "", "is_active": "on"}
    )

    assert response.status_code == 200
    assert "请填写循环卡密内容" in response.content.decode()
    assert not ReusableCardKey.objects.exists()


@pytest.mark.django_db
def test_revealing_the_shared_secret_needs_the_permission_and_is_audited(client, staff_user, owner_user):
    reusable = make_reusable(cap=10)
    url = f"/console/reusable-keys/{reusable.pk}/reveal/"

    client.force_login(staff_user)
    refused = client.post(url)
    client.force_login(owner_user)
    confirmation = client.get(url)
    revealed = client.post(url)

    assert refused.status_code == 403
    assert SECRET not in confirmation.content.decode()
    assert SECRET in revealed.content.decode()
    entry = AuditLogEntry.objects.get(action="catalog.reusable_key.secret_revealed")
    assert entry.actor == owner_user
    assert SECRET not in audit_text()
