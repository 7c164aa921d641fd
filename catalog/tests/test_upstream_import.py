"""Importing products from an upstream Kamen with a markup (issue 17 §2): the price rule, and the
import read over HTTP from a live upstream (this same Kamen, serving its open API)."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from catalog.models import Category, Product, ProductType, SupplierAdapter, SupplierChannel
from catalog.services.suppliers import create_supplier
from catalog.services.upstream import Markup, apply_markup, import_upstream_products, parse_markup
from orders.tests.docking_support import docked_site, owner
from orders.tests.factories import add_keys, make_product

costs = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999"), places=2)
values = st.decimals(min_value=Decimal("0"), max_value=Decimal("500"), places=2)


@given(
    cost=costs,
    value=values,
    kind=st.sampled_from(["percent", "fixed"]),
    rounding=st.sampled_from(["fen", "jiao", "yuan"]),
)
def test_the_price_is_the_markup_rounded_up_to_the_unit_never_below(cost, value, kind, rounding):
    price = apply_markup(cost, Markup(kind, value, rounding))
    exact = cost * (1 + value / 100) if kind == "percent" else cost + value
    unit = {"fen": Decimal("0.01"), "jiao": Decimal("0.1"), "yuan": Decimal("1")}[rounding]

    assert exact <= price < exact + unit
    assert price % unit == 0 and price == price.quantize(Decimal("0.01"))


def test_examples_of_the_rule():
    assert apply_markup(Decimal("80.00"), Markup("percent", Decimal("10"), "yuan")) == Decimal("88.00")
    assert apply_markup(Decimal("80.01"), Markup("percent", Decimal("10"), "jiao")) == Decimal("88.10")
    assert apply_markup(Decimal("80.00"), Markup("fixed", Decimal("5.55"), "jiao")) == Decimal("85.60")
    assert apply_markup(Decimal("9.99"), Markup("fixed", Decimal("0"), "fen")) == Decimal("9.99")


@pytest.mark.parametrize(
    "kind, value, rounding, field",
    [
        ("ratio", "10", "yuan", "markup_kind"),
        ("percent", "-1", "yuan", "markup_value"),
        ("percent", "ten", "yuan", "markup_value"),
        ("percent", "NaN", "yuan", "markup_value"),
        ("fixed", "1.005", "fen", "markup_value"),
        ("percent", "5000", "fen", "markup_value"),
        ("fixed", "1", "mao", "rounding"),
    ],
)
def test_bad_markup_is_refused_per_field(kind, value, rounding, field):
    with pytest.raises(ValidationError) as refused:
        parse_markup(kind=kind, value=value, rounding=rounding)
    assert field in refused.value.message_dict


@pytest.fixture
def upstream(live_server, django_user_model):
    staff = owner(django_user_model)
    docked = docked_site(staff=staff, prepaid="500.00", discount_bp=8000)
    product = make_product(price="100.00", name="上游点卡")
    add_keys(product, 3)
    supplier = create_supplier(
        actor=None,
        app_secret=docked.secret,
        name="上游 Kamen",
        adapter=SupplierAdapter.KAMEN_API,
        base_url=live_server.url + "/",
        app_id=docked.key.key_id,
    )
    return supplier, product, staff


@pytest.mark.django_db(transaction=True)
def test_chosen_products_are_imported_at_the_markup_and_again_repriced_not_doubled(upstream):
    supplier, upstream_product, staff = upstream
    category = Category.objects.get(slug="cards")

    (imported,) = import_upstream_products(
        supplier=supplier,
        skus=[str(upstream_product.pk)],
        markup=parse_markup(kind="percent", value="10", rounding="yuan"),
        category=category,
        actor=staff,
    )
    (again,) = import_upstream_products(
        supplier=supplier,
        skus=[str(upstream_product.pk)],
        markup=parse_markup(kind="fixed", value="5.55", rounding="jiao"),
        category=category,
        actor=staff,
    )

    imported.refresh_from_db()
    assert again.pk == imported.pk
    assert imported.product_type == ProductType.CARD_KEY and imported.name == "上游点卡"
    assert imported.cost_price == Decimal("80.00")  # the upstream's price for our grade
    assert imported.retail_price == Decimal("85.60")  # 80.00 + 5.55, up to the jiao
    assert imported.is_on_shelf and imported.is_sourced_upstream  # keys bought upstream once paid
    channel = SupplierChannel.objects.get(product=imported)
    assert (channel.supplier_id, channel.supplier_sku, channel.is_in_stock) == (
        supplier.pk,
        str(upstream_product.pk),
        True,
    )


@pytest.mark.django_db(transaction=True)
def test_a_product_the_upstream_does_not_offer_changes_nothing(upstream):
    supplier, upstream_product, staff = upstream
    before = Product.objects.count()

    with pytest.raises(ValidationError):
        import_upstream_products(
            supplier=supplier,
            skus=[str(upstream_product.pk), "999999"],
            markup=parse_markup(kind="percent", value="10", rounding="yuan"),
            category=Category.objects.get(slug="cards"),
            actor=staff,
        )

    assert Product.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_card_keys_are_bought_once_upstream_and_stored_encrypted_as_sold(upstream):
    from catalog.models import CardKey, CardKeyStatus
    from catalog.services import send_top_up
    from kamen import crypto
    from orders.models import Order
    from orders.services.fulfilment import fulfil_order

    supplier, upstream_product, staff = upstream
    (ours,) = import_upstream_products(
        supplier=supplier,
        skus=[str(upstream_product.pk)],
        markup=parse_markup(kind="percent", value="10", rounding="yuan"),
        category=Category.objects.get(slug="cards"),
        actor=staff,
    )
    upstream_secrets = {
        crypto.decrypt(key_id=k.key_id, blob=bytes(k.secret_ciphertext))
        for k in CardKey.objects.filter(product=upstream_product)
    }

    channel = SupplierChannel.objects.get(product=ours)
    upstream_number = f"K-DOWN-9-C{channel.pk}"  # our order number, per channel

    first = send_top_up(product=ours, reference="K-DOWN-9", target="", quantity=2)  # paid upstream, not delivered yet
    fulfil_order(order_id=Order.objects.get(docking__client_order_no=upstream_number).pk)  # the upstream's worker
    done = send_top_up(product=ours, reference="K-DOWN-9", target="", quantity=2)
    again = send_top_up(product=ours, reference="K-DOWN-9", target="", quantity=2)

    assert first.status == "pending" and done.status == again.status == "succeeded"
    assert Order.objects.filter(docking__client_order_no=upstream_number).count() == 1  # bought once upstream
    stored = CardKey.objects.filter(product=ours)
    assert len(stored) == 2  # stored once
    assert {k.status for k in stored} == {CardKeyStatus.SOLD} and {k.sold_to for k in stored} == {"K-DOWN-9"}
    assert sum(k.batch.unit_cost for k in stored) == done.cost == Decimal("160.00")  # the upstream's charge
    secrets = {crypto.decrypt(key_id=k.key_id, blob=bytes(k.secret_ciphertext)) for k in stored}
    assert secrets <= upstream_secrets and len(secrets) == 2
    for key in stored:  # ciphertext at rest, never the secret
        assert crypto.decrypt(key_id=key.key_id, blob=bytes(key.secret_ciphertext)).encode() not in bytes(
            key.secret_ciphertext
        )
