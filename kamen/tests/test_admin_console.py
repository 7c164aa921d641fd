"""The merchant console (Django admin): organised for the business, saving through services."""

from decimal import Decimal

import pytest
from django.urls import reverse

from catalog import services
from catalog.models import Category, Product, ProductType
from kamen.models import AuditLogEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def category():
    return Category.objects.create(name="游戏点卡", slug="games")


@pytest.fixture
def product(staff_user, category):
    return services.create_product(
        actor=staff_user,
        category=category,
        name="Steam 50",
        product_type=ProductType.CARD_KEY,
        retail_price="48.00",
        cost_price="45.00",
    )


def product_form_data(product, **overrides):
    data = {
        "category": product.category_id,
        "name": product.name,
        "product_type": product.product_type,
        "sort_order": product.sort_order,
        "face_value": "",
        "retail_price": str(product.retail_price),
        "cost_price": str(product.cost_price),
        "max_resale_price": "",
        "off_shelf_reason": "",
        "min_quantity_per_order": product.min_quantity_per_order,
        "max_quantity_per_order": product.max_quantity_per_order,
        "purchase_limit_per_buyer": "",
        "delivery_order": product.delivery_order,
        "redemption_mode": product.redemption_mode,
        "low_stock_threshold": product.low_stock_threshold,
        "supplier_cost_ceiling": "",
        "recharge_target_rule": "",
        "recharge_target_regex": "",
        "recharge_target_label": "",
        "description": "",
    }
    for prefix in ("custom_fields", "images", "bundle_items"):
        data |= {
            f"{prefix}-TOTAL_FORMS": 0,
            f"{prefix}-INITIAL_FORMS": 0,
            f"{prefix}-MIN_NUM_FORMS": 0,
            f"{prefix}-MAX_NUM_FORMS": 1000,
        }
    return data | overrides


def test_dashboard_shows_chinese_titles_and_console_shortcuts(client, staff_user):
    client.force_login(staff_user)

    response = client.get(reverse("admin:index"))

    body = response.content.decode()
    assert response.status_code == 200
    assert "Kamen 商户后台" in body and "经营概览" in body
    assert "常用操作" in body and 'href="/console/' in body
    assert 'name="language"' in body  # the language switcher


def test_product_list_shows_prices_margin_and_stock_without_n_plus_one(
    client, staff_user, category, django_assert_max_num_queries
):
    for number in range(15):
        services.create_product(
            actor=staff_user,
            category=category,
            name=f"商品 {number}",
            product_type=ProductType.CARD_KEY,
            retail_price="10.00",
            cost_price="7.50",
        )
    client.force_login(staff_user)

    with django_assert_max_num_queries(12):
        response = client.get(reverse("admin:catalog_product_changelist"))

    body = response.content.decode()
    assert "¥2.50" in body  # margin
    assert "¥7.50" in body


def test_admin_price_edit_goes_through_the_service_and_is_audited(client, staff_user, product):
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:catalog_product_change", args=[product.pk]), product_form_data(product, retail_price="49.90")
    )

    assert response.status_code == 302
    product.refresh_from_db()
    assert product.retail_price == Decimal("49.90")
    entry = AuditLogEntry.objects.get(action="catalog.product.price_change")
    assert entry.actor == staff_user
    assert entry.changes == {"retail_price": ["48.00", "49.90"]}


def test_admin_refuses_a_bad_price_and_saves_nothing(client, staff_user, product):
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:catalog_product_change", args=[product.pk]), product_form_data(product, retail_price="49.999")
    )

    assert response.status_code == 200
    assert "retail_price" in response.context["adminform"].form.errors
    product.refresh_from_db()
    assert product.retail_price == Decimal("48.00")


def test_admin_shows_service_rules_beside_the_fields(client, staff_user, product):
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:catalog_product_change", args=[product.pk]),
        product_form_data(product, product_type=ProductType.DIRECT_RECHARGE),
    )

    assert response.status_code == 200
    assert "直充商品必须设置充值账号校验规则" in response.context["adminform"].form.errors["recharge_target_rule"][0]
    product.refresh_from_db()
    assert product.product_type == ProductType.CARD_KEY


def test_admin_add_product_with_custom_field(client, staff_user, category):
    client.force_login(staff_user)
    data = {
        "category": category.pk,
        "name": "王者荣耀点券",
        "product_type": ProductType.DIRECT_RECHARGE,
        "sort_order": 0,
        "retail_price": "30.00",
        "cost_price": "28.00",
        "min_quantity_per_order": 1,
        "max_quantity_per_order": 5,
        "delivery_order": "oldest_first",
        "redemption_mode": "none",
        "low_stock_threshold": 10,
        "recharge_target_rule": "qq",
        "recharge_target_label": "QQ 号",
        "description": "<p>秒到<script>x()</script></p>",
        "custom_fields-TOTAL_FORMS": 1,
        "custom_fields-INITIAL_FORMS": 0,
        "custom_fields-0-name": "server",
        "custom_fields-0-label": "区服",
        "custom_fields-0-field_type": "text",
        "custom_fields-0-is_required": "on",
        "custom_fields-0-sort_order": 0,
        "images-TOTAL_FORMS": 0,
        "images-INITIAL_FORMS": 0,
        "bundle_items-TOTAL_FORMS": 0,
        "bundle_items-INITIAL_FORMS": 0,
    }

    response = client.post(reverse("admin:catalog_product_add"), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    product = Product.objects.get(name="王者荣耀点券")
    assert product.description == "<p>秒到</p>"
    assert product.custom_fields.get().label == "区服"
    assert AuditLogEntry.objects.filter(action="catalog.product.create", target_id=str(product.pk)).exists()
    assert AuditLogEntry.objects.filter(action="catalog.product.custom_field_save").exists()


def test_shelf_actions(client, staff_user, product):
    client.force_login(staff_user)
    url = reverse("admin:catalog_product_changelist")

    client.post(url, {"action": "put_on_shelf_action", "_selected_action": [product.pk]})
    product.refresh_from_db()
    assert product.is_on_shelf is True

    client.post(url, {"action": "take_off_shelf_action", "_selected_action": [product.pk]})
    product.refresh_from_db()
    assert product.is_on_shelf is False
    assert AuditLogEntry.objects.filter(action="catalog.product.shelf_change").count() == 2


def test_category_admin_moves_through_the_service(client, staff_user):
    root = services.create_category(actor=staff_user, name="游戏", slug="games")
    other = services.create_category(actor=staff_user, name="话费", slug="mobile")
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:catalog_category_change", args=[root.pk]),
        {"name": "游戏", "slug": "games", "parent": other.pk, "sort_order": 0, "is_active": "on"},
    )

    assert response.status_code == 302
    root.refresh_from_db()
    assert root.parent == other
    assert AuditLogEntry.objects.filter(action="catalog.category.move").exists()


def test_category_admin_refuses_a_cycle(client, staff_user):
    root = services.create_category(actor=staff_user, name="游戏", slug="games")
    child = services.create_category(actor=staff_user, name="端游", slug="pc", parent=root)
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:catalog_category_change", args=[root.pk]),
        {"name": "游戏", "slug": "games", "parent": child.pk, "sort_order": 0, "is_active": "on"},
    )

    assert response.status_code == 200
    root.refresh_from_db()
    assert root.parent is None


def test_user_admin_lists_staff_with_roles(client, owner_user, staff_user):
    client.force_login(owner_user)

    response = client.get(reverse("admin:kamen_user_changelist"))

    assert response.status_code == 200
    assert "operator" in response.content.decode()
    assert client.get(reverse("admin:kamen_user_change", args=[staff_user.pk])).status_code == 200


def test_product_pages_render(client, staff_user, product):
    client.force_login(staff_user)

    assert client.get(reverse("admin:catalog_product_add")).status_code == 200
    assert client.get(reverse("admin:catalog_product_change", args=[product.pk])).status_code == 200
    assert client.get(reverse("admin:catalog_category_changelist")).status_code == 200


def test_admin_image_upload_is_checked_and_cleaned(client, staff_user, product, settings, tmp_path):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    settings.MEDIA_ROOT = tmp_path
    client.force_login(staff_user)
    url = reverse("admin:catalog_product_change", args=[product.pk])
    buffer = io.BytesIO()
    Image.new("RGB", (600, 300), "red").save(buffer, "PNG")

    bad = client.post(url, product_form_data(product, new_image=SimpleUploadedFile("x.png", b"not an image")))
    good = client.post(url, product_form_data(product, new_image=SimpleUploadedFile("x.png", buffer.getvalue())))

    assert "不是图片" in bad.context["adminform"].form.errors["new_image"][0]
    assert good.status_code == 302
    assert product.images.get().width == 600


def test_bundle_inline_refuses_a_nested_bundle_and_saves_nothing(client, staff_user, category, product):
    bundle = services.create_product(
        actor=staff_user, category=category, name="套餐", product_type=ProductType.BUNDLE, retail_price="60.00"
    )
    other = services.create_product(
        actor=staff_user, category=category, name="套餐2", product_type=ProductType.BUNDLE, retail_price="60.00"
    )
    client.force_login(staff_user)
    url = reverse("admin:catalog_product_change", args=[bundle.pk])

    def post(component):
        return client.post(
            url,
            product_form_data(
                bundle,
                **{
                    "bundle_items-TOTAL_FORMS": 1,
                    "bundle_items-0-component": component.pk,
                    "bundle_items-0-quantity": 2,
                },
            ),
        )

    refused = post(other)
    accepted = post(product)

    assert refused.status_code == 200
    assert "套餐不能包含另一个套餐" in refused.content.decode()
    assert accepted.status_code == 302
    assert bundle.bundle_items.get().component == product
    assert AuditLogEntry.objects.filter(action="catalog.bundle.item_save").count() == 1
