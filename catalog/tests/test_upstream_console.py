"""The merchant's console page for docking (issue 17 §2): connect an upstream Kamen with its URL
and key (checked against the upstream before anything is saved; the secrets stored encrypted),
list its catalog, pick products, set the markup rule, import. Bad input: a clear error and
nothing changed."""

from decimal import Decimal

import pytest
from django.urls import reverse

from catalog.models import Category, Product, Supplier, SupplierChannel
from orders.tests.docking_support import docked_site, owner
from orders.tests.factories import add_keys, make_product

WEBHOOK_SECRET = "webhook-secret-given-by-the-upstream-01"


@pytest.fixture
def upstream(live_server, django_user_model, client):
    staff = owner(django_user_model)
    docked = docked_site(staff=staff, prepaid="300.00", discount_bp=8000)
    product = make_product(price="100.00", name="上游点卡")
    add_keys(product, 4)
    client.force_login(staff)
    return live_server.url + "/", docked, product


def _connect(client, upstream_url, docked, **changes):
    data = {
        "name": "上游 Kamen",
        "base_url": upstream_url,
        "app_id": docked.key.key_id,
        "app_secret": docked.secret,
        "webhook_secret": WEBHOOK_SECRET,
        "low_balance_threshold": "100.00",
    } | changes
    return client.post(reverse("console:upstreams"), data)


@pytest.mark.django_db(transaction=True)
def test_the_merchant_connects_an_upstream_and_imports_chosen_products(client, upstream):
    base_url, docked, upstream_product = upstream

    connected = _connect(client, base_url, docked)
    supplier = Supplier.objects.get(name="上游 Kamen")
    page = client.get(connected["Location"])
    imported = client.post(
        connected["Location"],
        {
            "action": "import",
            "skus": [str(upstream_product.pk)],
            "category": Category.objects.get(slug="cards").pk,
            "markup_kind": "fixed",
            "markup_value": "5.55",
            "rounding": "jiao",
        },
        follow=True,
    )

    assert connected.status_code == 302
    assert connected["Location"] == reverse("console:upstream-import", kwargs={"pk": supplier.pk})
    assert "上游点卡" in page.content.decode() and "80.00" in page.content.decode()  # our price upstream
    callback = reverse("distribution:upstream-webhook", kwargs={"supplier_pk": supplier.pk})
    assert callback in page.content.decode()
    product = SupplierChannel.objects.get(supplier=supplier, supplier_sku=str(upstream_product.pk)).product
    assert (product.cost_price, product.retail_price, product.upstream_stock) == (
        Decimal("80.00"),
        Decimal("85.60"),
        4,
    )
    assert "已导入 1 个商品" in imported.content.decode()
    assert supplier.balance == Decimal("300.00") and supplier.low_balance_threshold == Decimal("100.00")
    stored = bytes(supplier.app_secret_ciphertext) + bytes(supplier.webhook_secret_ciphertext)
    assert docked.secret.encode() not in stored and WEBHOOK_SECRET.encode() not in stored


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"app_secret": "not-the-right-secret-000"}, "无法用这个地址和密钥读取上游"),
        ({"app_id": "ak_nobody"}, "无法用这个地址和密钥读取上游"),
        ({"base_url": "ftp://upstream"}, "接口地址必须是"),
        ({"webhook_secret": "short"}, "回调密钥长度"),
        ({"low_balance_threshold": "-1"}, "大于或等于"),
    ],
)
def test_a_bad_address_or_key_is_a_clear_error_and_saves_nothing(client, upstream, changes, message):
    base_url, docked, _product = upstream

    answer = _connect(client, base_url, docked, **changes)

    assert answer.status_code == 200
    assert message in answer.content.decode()
    assert not Supplier.objects.filter(name="上游 Kamen").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"skus": []}, "请至少选择一个上游商品"),
        ({"skus": ["999999"]}, "上游没有这些商品"),
        ({"markup_value": "-3"}, "加价不能为负数"),
        ({"markup_value": "ten"}, "加价必须是数字"),
        ({"rounding": "mao"}, "mao"),
        ({"category": ""}, "这个字段是必填项"),
    ],
)
def test_a_bad_import_is_a_clear_error_and_creates_nothing(client, upstream, changes, message):
    base_url, docked, upstream_product = upstream
    connected = _connect(client, base_url, docked)
    before = Product.objects.count()
    data = {
        "action": "import",
        "skus": [str(upstream_product.pk)],
        "category": Category.objects.get(slug="cards").pk,
        "markup_kind": "percent",
        "markup_value": "10",
        "rounding": "yuan",
    } | changes

    answer = client.post(connected["Location"], data)

    assert answer.status_code == 200
    assert message in answer.content.decode()
    assert Product.objects.count() == before
