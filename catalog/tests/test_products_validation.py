"""What a buyer types at checkout: recharge targets and custom fields."""

import pytest
from django.core.exceptions import ValidationError

from catalog.models import Category, Product, ProductCustomField, ProductType
from catalog.validation import validate_buyer_fields, validate_recharge_target

pytestmark = pytest.mark.django_db


def top_up(rule, regex=""):
    category = Category.objects.get_or_create(slug="mobile", defaults={"name": "话费"})[0]
    return Product.objects.create(
        category=category,
        name="话费直充",
        product_type=ProductType.DIRECT_RECHARGE,
        retail_price="10.00",
        recharge_target_rule=rule,
        recharge_target_regex=regex,
    )


@pytest.mark.parametrize(
    ("rule", "regex", "target", "cleaned"),
    [
        ("mobile", "", " 13812345678 ", "13812345678"),
        ("qq", "", "10001", "10001"),
        ("qq", "", "12345678901", "12345678901"),
        ("email", "", "buyer@example.com", "buyer@example.com"),
        ("game_uid", "", "9876543210", "9876543210"),
        ("regex", r"[A-Z]{2}\d{4}", "AB1234", "AB1234"),
        ("mobile", "", "138\x0012345678", "13812345678"),
    ],
)
def test_good_targets_are_cleaned(rule, regex, target, cleaned):
    assert validate_recharge_target(product=top_up(rule, regex), target=target) == cleaned


@pytest.mark.parametrize(
    ("rule", "regex", "target", "message"),
    [
        ("mobile", "", "12812345678", "手机号"),
        ("mobile", "", "1381234567", "手机号"),
        ("mobile", "", "138123456789", "手机号"),
        ("qq", "", "01234", "QQ"),
        ("qq", "", "1234", "QQ"),
        ("qq", "", "123456789012", "QQ"),
        ("email", "", "not-an-email", "邮箱"),
        ("game_uid", "", "12ab", "UID"),
        ("regex", r"[A-Z]{2}\d{4}", "AB12345", "格式不正确"),
        ("regex", r"[A-Z]{2}\d{4}", "xAB1234", "格式不正确"),
        ("mobile", "", "", "请填写"),
    ],
)
def test_bad_targets_get_a_clear_message(rule, regex, target, message):
    with pytest.raises(ValidationError) as raised:
        validate_recharge_target(product=top_up(rule, regex), target=target)

    assert message in raised.value.messages[0]


def test_buyer_fields_are_checked_one_by_one():
    product = top_up("mobile")
    ProductCustomField.objects.create(product=product, name="server", label="区服", regex=r"S\d+")
    ProductCustomField.objects.create(product=product, name="level", label="等级", field_type="number")
    ProductCustomField.objects.create(product=product, name="qq", label="联系 QQ", field_type="qq", is_required=False)
    ProductCustomField.objects.create(product=product, name="role", label="角色名")

    with pytest.raises(ValidationError) as raised:
        validate_buyer_fields(product=product, data={"server": "X1", "level": "abc", "qq": "0123", "role": ""})

    errors = raised.value.message_dict
    assert "区服格式不正确" in errors["server"][0]
    assert "等级必须是数字" in errors["level"][0]
    assert "联系 QQ" in errors["qq"][0]
    assert "请填写角色名" in errors["role"][0]


def test_buyer_fields_are_cleaned_and_unknown_keys_dropped():
    product = top_up("mobile")
    ProductCustomField.objects.create(product=product, name="role", label="角色名")
    ProductCustomField.objects.create(product=product, name="note", label="备注", is_required=False)

    cleaned = validate_buyer_fields(product=product, data={"role": " 勇者\t\x07 ", "admin": "1"})

    assert cleaned == {"role": "勇者", "note": ""}


def test_buyer_field_too_long_is_refused():
    product = top_up("mobile")
    ProductCustomField.objects.create(product=product, name="role", label="角色名")

    with pytest.raises(ValidationError) as raised:
        validate_buyer_fields(product=product, data={"role": "长" * 201})

    assert "太长" in raised.value.message_dict["role"][0]
