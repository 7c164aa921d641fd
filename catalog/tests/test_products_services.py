"""Product services: good input is saved and audited, bad input is refused and saves nothing."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from catalog import services
from catalog.models import (
    BundleItem,
    Category,
    Product,
    ProductCustomField,
    ProductType,
)
from kamen.models import AuditLogEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def category():
    return Category.objects.create(name="游戏点卡", slug="games")


def make_product(actor, in_category, **overrides):
    fields = {
        "category": in_category,
        "name": "Steam 50",
        "product_type": ProductType.CARD_KEY,
        "retail_price": "48.00",
        "cost_price": "45.00",
    } | overrides
    return services.create_product(actor=actor, **fields)


def test_create_product_saves_exact_prices_and_audits(staff_user, category):
    product = make_product(staff_user, category, face_value="50")

    product.refresh_from_db()
    assert product.retail_price == Decimal("48.00")
    assert product.face_value == Decimal("50.00")
    assert product.is_on_shelf is False
    entry = AuditLogEntry.objects.get(action="catalog.product.create")
    assert entry.actor == staff_user
    assert entry.changes["retail_price"] == [None, "48.00"]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"retail_price": "10.001"}, "retail_price", "最多两位小数"),
        ({"retail_price": "-1"}, "retail_price", "不能为负数"),
        ({"retail_price": "0"}, "retail_price", "必须大于 0"),
        ({"retail_price": "abc"}, "retail_price", "不是有效金额"),
        ({"retail_price": 1.5}, "retail_price", "不能用浮点数"),
        ({"cost_price": "-0.01"}, "cost_price", "不能为负数"),
        ({"min_quantity_per_order": 5, "max_quantity_per_order": 2}, "max_quantity_per_order", "不能小于"),
        ({"max_resale_price": "40.00"}, "max_resale_price", "不能低于零售价"),
        ({"product_type": "lottery"}, "product_type", "未知的商品类型“lottery”"),
        ({"product_type": ProductType.DIRECT_RECHARGE}, "recharge_target_rule", "必须设置充值账号校验规则"),
        (
            {
                "product_type": ProductType.DIRECT_RECHARGE,
                "recharge_target_rule": "regex",
                "recharge_target_regex": "([",
            },
            "recharge_target_regex",
            "不是有效的正则表达式",
        ),
        ({"name": "  "}, "name", "请填写名称"),
        ({"category": 999999}, "category", "不存在"),
    ],
)
def test_create_product_refuses_bad_input_and_saves_nothing(staff_user, category, overrides, field, message):
    with pytest.raises(ValidationError) as raised:
        make_product(staff_user, category, **overrides)

    assert message in " ".join(raised.value.message_dict[field])
    assert Product.objects.count() == 0
    assert AuditLogEntry.objects.filter(action__startswith="catalog.product").count() == 0


def test_unknown_field_is_refused(staff_user, category):
    with pytest.raises(ValidationError, match="未知的商品字段"):
        make_product(staff_user, category, colour="red")


def test_direct_recharge_with_mobile_rule_is_accepted(staff_user, category):
    product = make_product(
        staff_user, category, product_type=ProductType.DIRECT_RECHARGE, recharge_target_rule="mobile"
    )

    assert product.recharge_target_rule == "mobile"


def test_price_change_records_who_when_and_before_after(staff_user, category):
    product = make_product(staff_user, category)

    services.set_product_price(product=product, actor=staff_user, retail_price="49.90", cost_price="44.00")

    product.refresh_from_db()
    assert product.retail_price == Decimal("49.90")
    entry = AuditLogEntry.objects.get(action="catalog.product.price_change")
    assert entry.actor == staff_user and entry.actor_name == "operator"
    assert entry.created_at is not None
    assert entry.target_id == str(product.pk)
    assert entry.changes == {"retail_price": ["48.00", "49.90"], "cost_price": ["45.00", "44.00"]}


def test_price_change_needs_the_price_permission(django_user_model, staff_user, category):
    product = make_product(staff_user, category)
    clerk = django_user_model.objects.create_user(username="clerk", password="x", is_staff=True)

    with pytest.raises(PermissionDenied):
        services.set_product_price(product=product, actor=clerk, retail_price="1.00")

    product.refresh_from_db()
    assert product.retail_price == Decimal("48.00")


def test_bad_price_change_changes_nothing(staff_user, category):
    product = make_product(staff_user, category)

    with pytest.raises(ValidationError):
        services.set_product_price(product=product, actor=staff_user, retail_price="12.345")

    product.refresh_from_db()
    assert product.retail_price == Decimal("48.00")
    assert not AuditLogEntry.objects.filter(action="catalog.product.price_change").exists()


def test_shelf_changes_are_audited_and_need_a_reason_to_go_off(staff_user, category):
    product = make_product(staff_user, category)

    services.put_on_shelf(product=product, actor=staff_user)
    with pytest.raises(ValidationError, match="下架原因"):
        services.take_off_shelf(product=product, actor=staff_user, reason=" ")
    services.take_off_shelf(product=product, actor=staff_user, reason="供货商断货")

    product.refresh_from_db()
    assert product.is_on_shelf is False
    assert product.off_shelf_reason == "供货商断货"
    changes = [e.changes for e in AuditLogEntry.objects.filter(action="catalog.product.shelf_change").order_by("id")]
    assert changes[0] == {"is_on_shelf": [False, True]}
    assert changes[1] == {"is_on_shelf": [True, False], "off_shelf_reason": ["", "供货商断货"]}


def test_stock_settings_changes_are_audited(staff_user, category):
    product = make_product(staff_user, category)

    services.update_product(product=product, actor=staff_user, low_stock_threshold=3)

    entry = AuditLogEntry.objects.get(action="catalog.product.stock_settings_change")
    assert entry.changes == {"low_stock_threshold": [10, 3]}


def test_description_is_sanitised(staff_user, category):
    product = make_product(
        staff_user,
        category,
        description='<p onclick="steal()">好<script>alert(1)</script><a href="javascript:x()">坏</a>'
        '<a href="https://example.com">链接</a><img src="http://x.test/a.png" onerror="x()"></p>',
    )

    assert "script" not in product.description
    assert "onclick" not in product.description and "onerror" not in product.description
    assert "javascript:" not in product.description
    assert 'rel="noopener' in product.description
    assert '<img src="http://x.test/a.png">' in product.description


def test_images_from_data_urls_are_dropped(staff_user, category):
    product = make_product(staff_user, category, description='<img src="data:image/png;base64,AAAA">')

    assert "data:" not in product.description


def test_bundle_rules(staff_user, category):
    card = make_product(staff_user, category)
    bundle = make_product(staff_user, category, name="套餐", product_type=ProductType.BUNDLE)
    other_bundle = make_product(staff_user, category, name="套餐2", product_type=ProductType.BUNDLE)

    with pytest.raises(ValidationError, match="不能包含它自己"):
        services.add_bundle_item(bundle=bundle, component=bundle, actor=staff_user)
    with pytest.raises(ValidationError, match="不能包含另一个套餐"):
        services.add_bundle_item(bundle=bundle, component=other_bundle, actor=staff_user)
    with pytest.raises(ValidationError, match="不存在"):
        services.add_bundle_item(bundle=bundle, component=999999, actor=staff_user)
    with pytest.raises(ValidationError, match="只有套餐类型"):
        services.add_bundle_item(bundle=card, component=bundle, actor=staff_user)
    with pytest.raises(ValidationError, match="不能小于 1"):
        services.add_bundle_item(bundle=bundle, component=card, quantity=0, actor=staff_user)
    assert BundleItem.objects.count() == 0

    services.add_bundle_item(bundle=bundle, component=card, quantity=2, actor=staff_user)

    assert bundle.bundle_items.get().quantity == 2
    with pytest.raises(ValidationError, match="只能是套餐类型"):
        services.update_product(product=bundle, actor=staff_user, product_type=ProductType.CARD_KEY)
    with pytest.raises(ValidationError, match="不能改为套餐"):
        services.update_product(product=card, actor=staff_user, product_type=ProductType.BUNDLE)


def test_empty_bundle_cannot_go_on_shelf(staff_user, category):
    bundle = make_product(staff_user, category, name="套餐", product_type=ProductType.BUNDLE)

    with pytest.raises(ValidationError, match="先添加套餐内容"):
        services.put_on_shelf(product=bundle, actor=staff_user)

    bundle.refresh_from_db()
    assert bundle.is_on_shelf is False


def test_custom_fields_validate_their_regex(staff_user, category):
    product = make_product(staff_user, category)

    with pytest.raises(ValidationError) as raised:
        services.save_custom_field(product=product, actor=staff_user, name="server", label="区服", regex="(")
    assert "不是有效的正则表达式" in raised.value.message_dict["regex"][0]
    with pytest.raises(ValidationError) as raised:
        services.save_custom_field(product=product, actor=staff_user, name="server", label="区服", field_type="date")
    assert "未知的字段类型" in raised.value.message_dict["field_type"][0]
    assert ProductCustomField.objects.count() == 0

    services.save_custom_field(product=product, actor=staff_user, name="server", label="区服", regex=r"S\d+")
    services.save_custom_field(product=product, actor=staff_user, name="server", label="游戏区服", regex=r"S\d+")

    assert product.custom_fields.get().label == "游戏区服"


def test_category_move_refuses_cycles(staff_user):
    root = services.create_category(actor=staff_user, name="游戏", slug="games")
    child = services.create_category(actor=staff_user, name="端游", slug="pc", parent=root)
    other = services.create_category(actor=staff_user, name="话费", slug="mobile")

    with pytest.raises(ValidationError, match="下级分类"):
        services.move_category(category=root, actor=staff_user, new_parent=child)
    with pytest.raises(ValidationError, match="已被使用"):
        services.create_category(actor=staff_user, name="重复", slug="games")
    services.move_category(category=child, actor=staff_user, new_parent=other)

    child.refresh_from_db()
    assert child.parent == other
    assert AuditLogEntry.objects.filter(action="catalog.category.move").count() == 1
