"""The claim query's plan on a realistic volume: it must walk the partial index of available keys.

Ordered by id alone, PostgreSQL preferred the primary key and filtered its way through every
other product's keys and every sold key: fine on a small table, 15 ms a claim at 100,000 keys.
These tests EXPLAIN the statement claim_card_keys really runs, so such a regression is caught.
"""

from decimal import Decimal

import pytest
from django.db import connection

from catalog.models import (
    CardKey,
    CardKeyBatch,
    Category,
    DeliveryOrder,
    Product,
    ProductType,
)
from catalog.services import InsufficientStock, card_keys, claim_card_keys
from kamen.tests.plans import explain, statements_run_by

TABLE = CardKey._meta.db_table


def make_product(name: str, delivery_order=DeliveryOrder.OLDEST_FIRST) -> Product:
    category, _ = Category.objects.get_or_create(slug="cards", defaults={"name": "点卡"})
    return Product.objects.create(
        category=category,
        name=name,
        product_type=ProductType.CARD_KEY,
        retail_price=Decimal("10.00"),
        delivery_order=delivery_order,
    )


def stock(product: Product, count: int, *, sold: int = 0) -> None:
    """``count`` keys in one statement (the plan is the point, not the encryption); the first
    ``sold`` of them already sold, as on a product that has been selling for a while."""
    batch = CardKeyBatch.objects.create(product=product, key_count=count)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {TABLE} (product_id, batch_id, card_no, secret_ciphertext, key_id, fingerprint, status,
                                 expires_at, created_at, sold_at)
            SELECT %(product)s, %(batch)s, '', '\\x00'::bytea, 't1', md5(%(product)s || ':' || n) || md5(n::text),
                   CASE WHEN n <= %(sold)s THEN 'sold' ELSE 'available' END,
                   CASE WHEN n %% 3 = 0 THEN now() + interval '1 year' + n * interval '1 minute' END,
                   now(), CASE WHEN n <= %(sold)s THEN now() END
            FROM generate_series(1, %(count)s) AS n
            """,
            {"product": product.pk, "batch": batch.pk, "count": count, "sold": sold},
        )


def claim_plan(product: Product) -> str:
    """EXPLAIN of the statement a claim of one key runs (EXPLAIN alone does not execute it)."""
    with statements_run_by(card_keys) as statements:
        claim_card_keys(product=product, quantity=1)
    (statement,) = statements
    return "\n".join(row[0] for row in explain(*statement))


@pytest.fixture
def realistic_stock(db):
    """50,000 keys: four products imported first, then the hot one (most of the table, some of
    it sold) and one delivered first-expiring."""
    for number in range(4):
        stock(make_product(f"冷门商品{number}"), 5_000)
    hot = make_product("热门商品")
    expiring = make_product("限时商品", DeliveryOrder.FIRST_EXPIRING)
    stock(hot, 28_000, sold=3_000)
    stock(expiring, 2_000, sold=500)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")
    return hot, expiring


def test_claiming_oldest_first_walks_the_partial_index_and_reads_a_handful_of_pages(realistic_stock):
    hot, _expiring = realistic_stock

    plan = claim_plan(hot)
    with statements_run_by(card_keys) as statements:
        claim_card_keys(product=hot, quantity=1)
    (statement,) = statements
    (executed,) = explain(*statement, options="(ANALYZE, BUFFERS, FORMAT JSON)")[0][0]

    assert "card_key_available_idx" in plan, plan
    assert f"Seq Scan on {TABLE}" not in plan, plan
    pages = executed["Plan"]["Shared Hit Blocks"] + executed["Plan"].get("Shared Read Blocks", 0)
    assert pages < 100, executed  # the primary-key plan read over 1,000


def test_claiming_first_expiring_walks_the_partial_expiry_index(realistic_stock):
    _hot, expiring = realistic_stock

    plan = claim_plan(expiring)

    assert "card_key_available_exp_idx" in plan, plan
    assert f"Seq Scan on {TABLE}" not in plan, plan


@pytest.mark.django_db
def test_random_delivery_claims_distinct_available_keys():
    product = make_product("随机商品", DeliveryOrder.RANDOM)
    stock(product, 50, sold=10)

    keys = claim_card_keys(product=product, quantity=30)

    assert len({key.pk for key in keys}) == 30
    assert all(key.status == "sold" and key.sold_at is not None for key in keys)
    assert CardKey.objects.filter(product=product, status="available").count() == 10


@pytest.mark.django_db(transaction=True)
def test_a_claim_outside_a_transaction_that_finds_too_few_keys_claims_none_and_locks_none():
    product = make_product("少量商品")
    stock(product, 3)

    with pytest.raises(InsufficientStock) as error:
        claim_card_keys(product=product, quantity=4)

    assert error.value.available == 3
    assert CardKey.objects.filter(product=product, status="available").count() == 3
    assert len(claim_card_keys(product=product, quantity=3)) == 3  # nothing was left locked
