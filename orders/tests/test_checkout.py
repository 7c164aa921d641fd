"""Checkout: server-side price, limits, validation, one order per token, stock held."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from catalog.models import CardKey, CardKeyStatus, ProductCustomField, ProductType
from orders.models import Order
from orders.services import place_order
from orders.services.query_password import check_query_password

from .factories import add_keys, buy, make_product


@pytest.mark.django_db
def test_the_price_comes_from_the_server_and_the_password_is_hashed():
    product = make_product(price="48.00")
    add_keys(product, 5)

    order = buy(product, quantity=3)

    assert (order.unit_price, order.total_amount) == (Decimal("48.00"), Decimal("144.00"))
    assert order.query_password_hash != "pass1234" and check_query_password("pass1234", order.query_password_hash)
    assert CardKey.objects.filter(status=CardKeyStatus.RESERVED, reserved_for=order.order_no).count() == 3


@pytest.mark.django_db
def test_the_same_checkout_token_twice_returns_the_same_order():
    product = make_product()
    add_keys(product, 5)

    first = buy(product, checkout_token="tok-1")
    second = buy(product, checkout_token="tok-1")

    assert first.pk == second.pk
    assert Order.objects.count() == 1
    assert CardKey.objects.filter(status=CardKeyStatus.RESERVED).count() == 1


@pytest.mark.parametrize(
    ("contact", "message"),
    [("", "请填写联系方式"), ("not-an-email@", "请输入正确的邮箱地址"), ("12345", "联系方式须为邮箱或 11 位中国大陆手机号"),
     ("10012345678", "联系方式须为邮箱或 11 位中国大陆手机号"),
     # a valid address (validate_email allows 320 characters) longer than the order stores
     ("a" * 64 + "@" + "b" * 60 + ".com", "联系方式过长（最多 120 个字符）")],
)  # fmt: skip
@pytest.mark.django_db
def test_invalid_contacts_are_refused_with_a_clear_message(contact, message):
    product = make_product()
    add_keys(product, 1)

    with pytest.raises(ValidationError) as error:
        buy(product, contact=contact)

    assert any(message in text for text in error.value.message_dict["contact"])
    assert not Order.objects.exists()
    assert not CardKey.objects.filter(status=CardKeyStatus.RESERVED).exists()


@pytest.mark.django_db
def test_a_mobile_number_is_a_valid_contact():
    product = make_product()
    add_keys(product, 1)

    order = buy(product, contact="13800138000")

    assert (order.contact, order.contact_kind) == ("13800138000", "mobile")


@pytest.mark.parametrize("quantity", [0, 11, "two", -1])
@pytest.mark.django_db
def test_quantities_beyond_the_limits_are_refused(quantity):
    product = make_product(max_quantity_per_order=10)
    add_keys(product, 20)

    with pytest.raises(ValidationError) as error:
        buy(product, quantity=quantity)

    assert "quantity" in error.value.message_dict
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_the_per_buyer_limit_counts_earlier_orders_of_the_same_contact():
    product = make_product(purchase_limit_per_buyer=3)
    add_keys(product, 10)
    buy(product, quantity=2)

    with pytest.raises(ValidationError) as error:
        buy(product, quantity=2)

    assert "每位买家限购 3 件" in error.value.message_dict["quantity"][0]
    assert buy(product, quantity=2, contact="other@example.com").quantity == 2


@pytest.mark.django_db
def test_custom_fields_are_validated_and_unknown_keys_dropped():
    product = make_product(product_type=ProductType.MANUAL)
    ProductCustomField.objects.create(product=product, name="qq", label="QQ", field_type="qq")

    with pytest.raises(ValidationError) as error:
        buy(product, buyer_fields={"qq": "abc"})
    assert "QQ必须是 5–11 位数字且不以 0 开头" in error.value.message_dict["qq"][0]

    order = buy(product, buyer_fields={"qq": "123456", "price": "0.01"})
    assert order.buyer_fields == {"qq": "123456"}


@pytest.mark.django_db
def test_more_than_the_stock_is_refused_and_holds_nothing():
    product = make_product()
    add_keys(product, 2)

    with pytest.raises(ValidationError) as error:
        buy(product, quantity=3)

    assert "库存不足" in error.value.message_dict["quantity"][0]
    assert CardKey.objects.filter(status=CardKeyStatus.AVAILABLE).count() == 2
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_a_product_off_the_shelf_cannot_be_bought():
    product = make_product(is_on_shelf=False)

    with pytest.raises(ValidationError):
        buy(product)


@pytest.mark.django_db
def test_a_referral_is_snapshotted_through_the_distribution_hook(monkeypatch):
    product = make_product()
    add_keys(product, 1)
    monkeypatch.setattr(
        "distribution.services.attribution_for_referral",
        lambda *, code: {"distributor_id": 7, "chain": [7, 3, 1], "link": "L-9"} if code == "AGENT7" else None,
    )

    order = place_order(
        product=product, quantity=1, contact="a@b.cn", query_password="pass1234", referral={"code": "AGENT7", "channel": "douyin"}
    )

    assert (order.distributor_id, order.channel) == (7, "douyin")
    assert order.attribution["chain"] == [7, 3, 1] and order.attribution["link"] == "L-9"


@pytest.mark.django_db
def test_a_blocked_risk_verdict_refuses_the_order(monkeypatch):
    product = make_product()
    add_keys(product, 1)
    from types import SimpleNamespace

    monkeypatch.setattr(
        "riskcontrol.services.assessment.assess_checkout_in_full",
        lambda **kwargs: SimpleNamespace(verdict="block", buyer_message="该订单未通过风控检查"),
    )

    with pytest.raises(ValidationError):
        buy(product)

    assert not Order.objects.exists()


@pytest.mark.django_db
def test_a_bundle_reserves_each_card_key_part():
    from catalog.models import BundleItem

    steam = make_product()
    add_keys(steam, 5)
    vip = make_product(product_type=ProductType.MANUAL)
    bundle = make_product(product_type=ProductType.BUNDLE, price="66.00")
    BundleItem.objects.create(bundle=bundle, component=steam, quantity=2)
    BundleItem.objects.create(bundle=bundle, component=vip, quantity=1)

    order = buy(bundle, quantity=2)

    assert CardKey.objects.filter(product=steam, status=CardKeyStatus.RESERVED, reserved_for=order.order_no).count() == 4


@pytest.mark.django_db
def test_two_checkouts_that_draw_the_same_order_number_both_get_an_order(monkeypatch):
    from orders.services import checkout

    product = make_product()
    add_keys(product, 3)
    first = buy(product, contact="first@example.com")
    drawn = iter([first.order_no, "K261124000000123456789"])
    monkeypatch.setattr(checkout, "_new_order_no", lambda: next(drawn))

    second = buy(product, contact="second@example.com")

    assert second.order_no == "K261124000000123456789"
    held = CardKey.objects.filter(status=CardKeyStatus.RESERVED)
    assert {key.reserved_for for key in held} == {first.order_no, second.order_no}
    assert held.count() == 2  # the attempt that collided reserved nothing


def test_order_numbers_carry_nine_random_digits():
    from orders.services.checkout import _new_order_no

    numbers = {_new_order_no() for _ in range(2_000)}

    assert len(numbers) == 2_000 and all(len(number) == 22 and number[1:].isdigit() for number in numbers)


@pytest.mark.django_db
def test_an_order_through_a_referral_link_counts_on_the_link_once_and_a_refused_one_not_at_all():
    from commissions.tests.factories import make_chain
    from distribution.models import ReferralLink
    from distribution.services.referrals import create_referral_link

    product = make_product()
    add_keys(product, 1)
    seller, parent, grandparent = make_chain(3)
    link = create_referral_link(distributor=seller, channel="wechat")
    referral = {"code": link.code.lower(), "channel": "wechat"}

    order = buy(product, referral=referral)
    with pytest.raises(ValidationError):  # out of stock: no order, nothing counted
        buy(product, contact="second@example.com", referral=referral)

    assert ReferralLink.objects.get(pk=link.pk).orders == 1
    assert (order.distributor_id, order.attribution["chain"]) == (seller.pk, [parent.pk, grandparent.pk])
    assert order.attribution["link"] == link.code and order.attribution["depth"] == 3


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_checkout_that_collides_writes_nothing_and_the_retry_counts_once(monkeypatch):
    """The common checkout is one statement with no transaction around it: the attempt that
    drew a taken order number must leave no key reserved and the link not counted."""
    from commissions.tests.factories import make_chain
    from distribution.models import ReferralLink
    from distribution.services.referrals import create_referral_link
    from orders.services import checkout

    product = make_product()
    add_keys(product, 3)
    link = create_referral_link(distributor=make_chain(1)[0], channel="wechat")
    referral = {"code": link.code, "channel": "wechat"}
    first = buy(product, contact="first@example.com", referral=referral)
    drawn = iter([first.order_no, "K261124000000123456780"])
    monkeypatch.setattr(checkout, "_new_order_no", lambda: next(drawn))

    second = buy(product, contact="second@example.com", referral=referral)

    assert second.order_no == "K261124000000123456780"
    held = CardKey.objects.filter(status=CardKeyStatus.RESERVED)
    assert sorted(key.reserved_for for key in held) == sorted([first.order_no, second.order_no])
    assert ReferralLink.objects.get(pk=link.pk).orders == 2


@pytest.mark.django_db(transaction=True)
def test_a_checkout_short_of_keys_takes_back_a_lapsed_reservation():
    """The one-statement checkout finds no available key; the full path then frees the key an
    unpaid order held past its window and sells it."""
    from datetime import timedelta

    from django.utils import timezone

    product = make_product()
    add_keys(product, 1)
    abandoned = buy(product, contact="gone@example.com")
    CardKey.objects.filter(reserved_for=abandoned.order_no).update(reserved_until=timezone.now() - timedelta(minutes=1))

    order = buy(product, contact="late@example.com")

    key = CardKey.objects.get(product=product)
    assert (key.status, key.reserved_for) == (CardKeyStatus.RESERVED, order.order_no)


@pytest.mark.django_db(transaction=True)
def test_a_top_up_target_longer_than_the_order_stores_is_refused_not_cut():
    """An e-mail top-up target the validator accepts but the column cannot hold: refused with
    a message, never stored cut short (the one-statement checkout must not truncate either)."""
    from catalog.models import RechargeTargetRule

    product = make_product(recharge_target_rule=RechargeTargetRule.EMAIL)
    add_keys(product, 1)

    with pytest.raises(ValidationError) as error:
        buy(product, recharge_target="a" * 64 + "@" + "b" * 60 + ".com")

    assert "过长" in error.value.message_dict["recharge_target"][0]
    assert not Order.objects.exists()
    assert not CardKey.objects.filter(status=CardKeyStatus.RESERVED).exists()
