"""The orders app's raw SQL: the pipeline's statements on orders, payments and deliveries,
composed with psycopg's ``sql`` module (identifiers and literals quoted by the driver).

Why raw SQL: each replaces several ORM round trips or the ORM's query building on the hot path
(docs/adr/0008); the driver prepares each once per connection (``kamen.db``). Values are
``%s`` / ``%(name)s`` placeholders, sent apart from the text.
"""

import functools

from psycopg import sql

from catalog.models import CardKey, Product
from kamen.db import select_arrays, select_list
from orders.models import DeliveryKind, Order, OrderDelivery, PaymentCallback, Voucher


def _text(statement: sql.Composable) -> str:
    return statement.as_string()


@functools.lru_cache(maxsize=64)
def moves(update_fields: tuple[str, ...]) -> tuple[str, tuple]:
    """The order's new values (``update_fields``, then its id) and its status-change rows
    (actor, time, then old, new and cause as arrays, one element per move) in one statement;
    and the fields, for their values."""
    fields = tuple(Order._meta.get_field(name) for name in update_fields)
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(field.column)) for field in fields)
    statement = sql.SQL("""
        WITH moved AS (UPDATE orders_order SET {assignments} WHERE id = %s RETURNING id)
        INSERT INTO orders_orderstatuschange (order_id, old_status, new_status, cause, actor_id, created_at)
        SELECT moved.id, move.old_status, move.new_status, move.cause, %s, %s
        FROM moved, unnest(%s::varchar[], %s::varchar[], %s::varchar[])
            WITH ORDINALITY AS move(old_status, new_status, cause, n)
        ORDER BY move.n
    """).format(assignments=assignments)
    return _text(statement), fields


@functools.lru_cache(maxsize=4)
def lock_order(by: str, with_product: bool) -> str:
    """The order (by ``id`` or ``order_no``, ``%s``) locked, its product's columns after its own
    when ``with_product``; the product is not locked."""
    columns = sql.SQL(select_list(Order, "o"))
    product = sql.SQL("")
    if with_product:
        columns = sql.SQL("{}, {}").format(columns, sql.SQL(select_list(Product, "p")))
        product = sql.SQL(" JOIN catalog_product p ON p.id = o.product_id")
    return _text(
        sql.SQL("SELECT {columns} FROM orders_order o{product} WHERE {by} = %s FOR UPDATE OF o").format(
            columns=columns, product=product, by=sql.Identifier("o", by)
        )
    )


LOCK_ORDER_NO = "SELECT 1 FROM orders_order WHERE order_no = %s FOR UPDATE"

# The order and any stored copy of a callback (gateway, event id, then the order number).
ORDER_AND_CALLBACK = _text(
    sql.SQL(
        "SELECT {order}, {callback} FROM orders_order o"
        " LEFT JOIN orders_paymentcallback c ON c.gateway = %s AND c.event_id = %s WHERE o.order_no = %s"
    ).format(order=sql.SQL(select_list(Order, "o")), callback=sql.SQL(select_list(PaymentCallback, "c")))
)

STORED_CALLBACK = _text(
    sql.SQL("SELECT {callback} FROM orders_paymentcallback c WHERE c.gateway = %s AND c.event_id = %s").format(
        callback=sql.SQL(select_list(PaymentCallback, "c"))
    )
)

CALLBACK_ID = "SELECT id FROM orders_paymentcallback WHERE gateway = %s AND event_id = %s"

# The attempt at this gateway is paid: the one start_payment recorded, or a new one.
PAID_ATTEMPT = """
    INSERT INTO orders_paymentattempt
        (order_id, gateway, out_trade_no, gateway_trade_no, amount, status, created_at, updated_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (gateway, out_trade_no) DO UPDATE SET
        amount = EXCLUDED.amount, status = EXCLUDED.status,
        gateway_trade_no = EXCLUDED.gateway_trade_no, updated_at = EXCLUDED.updated_at
"""

# One delivery row per key of catalog's CTE ``sold`` (card_keys.sell_reserved_card_keys_along_with).
DELIVERIES_OF_SOLD_KEYS = _text(
    sql.SQL("""
    INSERT INTO orders_orderdelivery
        (order_id, product_id, kind, card_key_id, quantity, content_key_id, message, is_voided, created_at)
    SELECT %(order)s, %(product)s, {card_key}, sold.id, 1, '', '', false, %(now)s FROM sold
    ORDER BY sold.id
    RETURNING card_key_id
""").format(card_key=sql.Literal(DeliveryKind.CARD_KEY.value))
)

# What the buyer's polling shows of an order (its number, ``%s``).
STATUS = (
    "SELECT o.status, o.paid_at IS NOT NULL, (SELECT count(*) FROM orders_orderdelivery d"
    " WHERE d.order_id = o.id AND NOT d.is_voided), coalesce(o.attribution->>'risk' = 'review', false)"
    " FROM orders_order o WHERE o.order_no = %s"
)


@functools.cache
def order_page() -> str:
    """The order ``%(order_no)s`` for its page: its columns, its product's, then its deliveries
    (by id), each delivery's card key (NULLs for a delivery without one) and product, one array
    per column; last, whether it has vouchers (most orders have none: the page then asks for
    none). One statement where the ORM built two or three (the order joined, the deliveries
    prefetched with their keys and products, the vouchers), on every load of the busiest page
    after the product page (ADR 0014)."""
    return _text(
        sql.SQL("""
        SELECT {order}, {product}, deliveries.*,
            EXISTS (SELECT 1 FROM {vouchers} v WHERE v.order_id = o.id) AS has_vouchers
        FROM {orders} o
        JOIN {products} p ON p.id = o.product_id
        CROSS JOIN LATERAL (
            SELECT {delivery_columns}, {key_columns}, {delivery_product_columns}
            FROM {deliveries} d
            LEFT JOIN {keys} k ON k.id = d.card_key_id
            JOIN {products} dp ON dp.id = d.product_id
            WHERE d.order_id = o.id
        ) deliveries
        WHERE o.order_no = %(order_no)s
        """).format(
            order=sql.SQL(select_list(Order, "o")),
            product=sql.SQL(select_list(Product, "p")),
            orders=sql.Identifier(Order._meta.db_table),
            products=sql.Identifier(Product._meta.db_table),
            deliveries=sql.Identifier(OrderDelivery._meta.db_table),
            keys=sql.Identifier(CardKey._meta.db_table),
            vouchers=sql.Identifier(Voucher._meta.db_table),
            # All three in the deliveries' order (by id), so their elements line up.
            delivery_columns=sql.SQL(select_arrays(OrderDelivery, "d", ("id",))),
            key_columns=sql.SQL(select_arrays(CardKey, "k", ("d.id",))),
            delivery_product_columns=sql.SQL(select_arrays(Product, "dp", ("d.id",))),
        )
    )
