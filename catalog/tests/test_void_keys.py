"""Voiding card keys: available keys only, a reason always, all or nothing, audited."""

from decimal import Decimal

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from catalog.models import CardKey, CardKeyBatch, CardKeyStatus, Category, Product, ProductType, StockAlert
from catalog.services import claim_card_keys, void_card_keys
from kamen import crypto
from kamen.models import AuditLogEntry

CHANGELIST = "/admin/catalog/cardkey/"


def make_product(threshold=0) -> Product:
    category, _ = Category.objects.get_or_create(slug="cards", defaults={"name": "点卡"})
    return Product.objects.create(
        category=category,
        name=f"Steam {Product.objects.count()}",
        product_type=ProductType.CARD_KEY,
        retail_price=Decimal("48.00"),
        is_on_shelf=True,
        low_stock_threshold=threshold,
    )


def add_keys(product, count) -> list[CardKey]:
    batch = CardKeyBatch.objects.create(product=product, key_count=count)
    keys = []
    for number in range(count):
        secret = f"VOID-{product.pk}-{number}"
        key_id, blob = crypto.encrypt(secret)
        keys.append(
            CardKey(
                product=product,
                batch=batch,
                secret_ciphertext=blob,
                key_id=key_id,
                fingerprint=crypto.blind_index(secret),
            )
        )
    return CardKey.objects.bulk_create(keys)


def statuses(keys) -> list[str]:
    return list(CardKey.objects.filter(pk__in=[key.pk for key in keys]).order_by("pk").values_list("status", flat=True))


@pytest.mark.django_db
def test_available_keys_are_voided_with_the_reason_in_the_audit_log(staff_user):
    product = make_product()
    first, second, third = add_keys(product, 3)

    voided = void_card_keys(card_key_ids=[first.pk, second.pk], reason="供应商告知已泄露", actor=staff_user)

    assert voided == 2
    assert statuses([first, second, third]) == ["void", "void", "available"]
    assert CardKey.objects.get(pk=first.pk).voided_at is not None
    entry = AuditLogEntry.objects.get(action="card_keys.voided")
    assert entry.actor == staff_user
    assert entry.changes["reason"] == "供应商告知已泄露"
    assert entry.changes["card_key_ids"] == [first.pk, second.pk]
    assert "VOID-" not in str(entry.changes) + entry.target_repr


@pytest.mark.django_db
def test_voided_keys_are_never_claimed(staff_user):
    product = make_product()
    first, second = add_keys(product, 2)
    void_card_keys(card_key_ids=[first.pk], reason="重复", actor=staff_user)

    claimed = claim_card_keys(product=product, quantity=1)

    assert [key.pk for key in claimed] == [second.pk]


@pytest.mark.django_db
def test_a_selection_with_a_sold_key_is_refused_and_nothing_changes(staff_user):
    product = make_product()
    keys = add_keys(product, 3)
    (sold,) = claim_card_keys(product=product, quantity=1)

    with pytest.raises(ValidationError, match=f"已售出或已预留的卡密不能作废：#{sold.pk}"):
        void_card_keys(card_key_ids=[key.pk for key in keys], reason="清理", actor=staff_user)

    assert statuses(keys).count("available") == 2
    assert not AuditLogEntry.objects.filter(action="card_keys.voided").exists()


@pytest.mark.django_db
def test_a_reserved_key_cannot_be_voided(staff_user):
    product = make_product()
    (key,) = add_keys(product, 1)
    CardKey.objects.filter(pk=key.pk).update(
        status=CardKeyStatus.RESERVED,
        reserved_at=timezone.now(),
        reserved_for="KM-TEST-ORDER",
        reserved_until=timezone.now() + timedelta(minutes=15),
    )

    with pytest.raises(ValidationError, match="已预留"):
        void_card_keys(card_key_ids=[key.pk], reason="清理", actor=staff_user)

    assert statuses([key]) == ["reserved"]


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["", "   ", None, "x" * 201])
def test_a_missing_or_overlong_reason_is_refused(staff_user, reason):
    product = make_product()
    (key,) = add_keys(product, 1)

    with pytest.raises(ValidationError) as error:
        void_card_keys(card_key_ids=[key.pk], reason=reason, actor=staff_user)

    assert "reason" in error.value.message_dict
    assert statuses([key]) == ["available"]


@pytest.mark.django_db
def test_an_empty_selection_or_unknown_keys_are_refused(staff_user):
    product = make_product()
    (key,) = add_keys(product, 1)

    with pytest.raises(ValidationError, match="请先选择"):
        void_card_keys(card_key_ids=[], reason="清理", actor=staff_user)
    with pytest.raises(ValidationError, match="不存在"):
        void_card_keys(card_key_ids=[key.pk, key.pk + 1000], reason="清理", actor=staff_user)

    assert statuses([key]) == ["available"]


@pytest.mark.django_db
def test_voiding_twice_is_harmless(staff_user):
    product = make_product()
    keys = add_keys(product, 2)
    void_card_keys(card_key_ids=[key.pk for key in keys], reason="清理", actor=staff_user)

    again = void_card_keys(card_key_ids=[key.pk for key in keys], reason="清理", actor=staff_user)

    assert again == 0
    assert statuses(keys) == ["void", "void"]
    assert AuditLogEntry.objects.filter(action="card_keys.voided").count() == 1


@pytest.mark.django_db
def test_staff_without_the_permission_cannot_void(django_user_model):
    finance = django_user_model.objects.create_user(username="finance", password="x", is_staff=True)
    finance.groups.add(Group.objects.get(name="finance"))
    (key,) = add_keys(make_product(), 1)

    with pytest.raises(PermissionDenied):
        void_card_keys(card_key_ids=[key.pk], reason="清理", actor=finance)

    assert statuses([key]) == ["available"]


@pytest.mark.django_db
def test_voiding_below_the_threshold_raises_the_alert_at_once(staff_user):
    product = make_product(threshold=1)
    keys = add_keys(product, 3)

    void_card_keys(card_key_ids=[keys[0].pk, keys[1].pk], reason="泄露", actor=staff_user)

    assert StockAlert.objects.get(product=product, resolved_at__isnull=True).available_count == 1


# --- the admin action -------------------------------------------------------------------------
def action_post(keys, **extra):
    return {"action": "void_selected_keys", "_selected_action": [str(key.pk) for key in keys], **extra}


@pytest.mark.django_db
def test_the_admin_action_asks_for_a_reason_then_voids(client, staff_user):
    product = make_product()
    keys = add_keys(product, 3)
    client.force_login(staff_user)

    confirmation = client.post(CHANGELIST, action_post(keys[:2]))
    done = client.post(CHANGELIST, action_post(keys[:2], apply="1", reason="批次有误"), follow=True)

    assert confirmation.status_code == 200
    assert "作废原因" in confirmation.content.decode()
    assert "VOID-" not in confirmation.content.decode()
    assert statuses(keys) == ["void", "void", "available"]
    assert "已作废 2 张卡密" in done.content.decode()


@pytest.mark.django_db
def test_the_admin_action_without_a_reason_changes_nothing(client, staff_user):
    keys = add_keys(make_product(), 2)
    client.force_login(staff_user)

    response = client.post(CHANGELIST, action_post(keys, apply="1", reason=""))

    assert response.status_code == 200
    assert "请填写作废原因" in response.content.decode()
    assert statuses(keys) == ["available", "available"]


@pytest.mark.django_db
def test_the_admin_action_refuses_a_selection_with_a_sold_key(client, staff_user):
    product = make_product()
    keys = add_keys(product, 2)
    claim_card_keys(product=product, quantity=1)
    client.force_login(staff_user)

    confirmation = client.post(CHANGELIST, action_post(keys))
    done = client.post(CHANGELIST, action_post(keys, apply="1", reason="清理"), follow=True)

    assert "不能作废" in confirmation.content.decode()
    assert "没有任何卡密被作废" in done.content.decode()
    assert sorted(statuses(keys)) == ["available", "sold"]


@pytest.mark.django_db
def test_the_admin_action_is_offered_only_to_staff_who_may_void(client, django_user_model, staff_user):
    add_keys(make_product(), 1)
    finance = django_user_model.objects.create_user(username="finance", password="x", is_staff=True)
    finance.groups.add(Group.objects.get(name="finance"))

    client.force_login(staff_user)
    operator_page = client.get(CHANGELIST).content.decode()
    client.force_login(finance)
    finance_page = client.get(CHANGELIST).content.decode()

    assert 'value="void_selected_keys"' in operator_page
    assert 'value="void_selected_keys"' not in finance_page


@pytest.mark.django_db
def test_the_admin_action_can_void_every_key_of_a_filtered_list(client, staff_user):
    product, other = make_product(), make_product()
    keys = add_keys(product, 4)
    (kept,) = add_keys(other, 1)
    client.force_login(staff_user)
    url = f"{CHANGELIST}?product__id__exact={product.pk}"

    client.post(url, action_post(keys[:1], select_across="1"))
    client.post(url, action_post(keys[:1], select_across="1", apply="1", reason="整批作废"))

    assert statuses(keys) == ["void"] * 4
    assert statuses([kept]) == ["available"]
