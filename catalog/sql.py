"""The catalog's raw SQL: the card-key statements of the order pipeline (claim, reserve, hold,
sell), composed with psycopg's ``sql`` module (identifiers and literals quoted by the driver).

Why raw SQL: each is one statement where the ORM needs several round trips (pick and lock,
count, update, read back), and the driver prepares it once per connection (``kamen.db``).

Statuses are literals, not parameters: a generic plan of a prepared statement can then still
match the partial indexes of available and reserved keys (a parameter could be any status).
Values are ``%(name)s`` placeholders, sent apart from the text.
"""

import functools

from psycopg import sql

from catalog.models import (
    CardKey,
    CardKeyStatus,
    Category,
    DeliveryOrder,
    Product,
    ProductCustomField,
    ProductImage,
    ReusableCardKey,
)
from kamen.db import select_arrays, select_list

TABLE_NAME = CardKey._meta.db_table
TABLE = sql.Identifier(TABLE_NAME)
AVAILABLE = sql.Literal(CardKeyStatus.AVAILABLE.value)
RESERVED = sql.Literal(CardKeyStatus.RESERVED.value)
SOLD = sql.Literal(CardKeyStatus.SOLD.value)

# A product's delivery order as an ORDER BY.
KEY_ORDER = {
    DeliveryOrder.FIRST_EXPIRING: sql.SQL("expires_at ASC NULLS LAST, id"),
    DeliveryOrder.RANDOM: sql.SQL("random()"),
}
BY_ID = sql.SQL("id")


def text(statement: sql.Composable) -> str:
    """The statement as the text the driver sends (and prepares under)."""
    return statement.as_string()


def key_order(delivery_order: str) -> sql.Composable:
    return KEY_ORDER.get(delivery_order, BY_ID)


QUANTITY = sql.Placeholder("quantity")


def picked(delivery_order: str, *, limit: sql.Composable = QUANTITY) -> sql.Composed:
    """The CTE ``picked``: up to ``limit`` available, unexpired keys of ``%(product)s`` in the
    product's delivery order, locked (``SKIP LOCKED``). Parameters: product, now, and those of
    ``limit``.

    The product filter is a range (``product_id >= p AND product_id <= p``) with ``product_id``
    leading the ORDER BY: the same rows in the same order, but the planner can no longer treat
    the order as "by id" alone, which it served by walking the primary key through every other
    product's keys and every sold key (15 ms a claim at 100,000 keys); it walks the partial
    index of the product's available keys instead (0.05 ms)."""
    return sql.SQL(
        """picked AS MATERIALIZED (
            SELECT id FROM {table}
            WHERE product_id >= %(product)s AND product_id <= %(product)s AND status = {available}
                AND (expires_at IS NULL OR expires_at > %(now)s)
            ORDER BY product_id, {order}
            LIMIT {limit}
            FOR UPDATE SKIP LOCKED
        )"""
    ).format(table=TABLE, available=AVAILABLE, order=key_order(delivery_order), limit=limit)


@functools.cache
def claim(delivery_order: str) -> str:
    """Pick and lock ``%(quantity)s`` keys, mark them sold to ``%(reference)s`` only if there
    are that many; rows: (how many were found, the sold key's columns…), in delivery order."""
    columns = [sql.Identifier("claimed", field.column) for field in CardKey._meta.concrete_fields]
    return text(
        sql.SQL(
            """
        WITH {picked}, found AS (
            SELECT count(*) AS found FROM picked
        ), claimed AS (
            UPDATE {table} AS card_key SET status = {sold}, sold_at = %(now)s, sold_to = %(reference)s
            FROM picked, found WHERE card_key.id = picked.id AND found.found = %(quantity)s
            RETURNING card_key.*
        )
        SELECT found.found, {columns}
        FROM found LEFT JOIN claimed ON true
        ORDER BY {order}
    """
        ).format(
            picked=picked(delivery_order),
            table=TABLE,
            sold=SOLD,
            columns=sql.SQL(", ").join(columns),
            order=key_order(delivery_order),
        )
    )


@functools.cache
def reserve(delivery_order: str) -> str:
    """Count what ``%(reference)s`` holds of ``%(product)s``, pick and lock what is missing,
    mark it reserved until ``%(until)s`` only if that makes ``%(quantity)s``; rows: (held,
    found, a reserved key's id or NULL)."""
    return text(
        sql.SQL(
            """
        WITH held AS (
            SELECT count(*) AS held FROM {table}
            WHERE reserved_for = %(reference)s AND status = {reserved} AND product_id = %(product)s
        ), {picked}, found AS (
            SELECT count(*) AS found FROM picked
        ), reserved AS (
            UPDATE {table} AS card_key
            SET status = {reserved}, reserved_for = %(reference)s, reserved_until = %(until)s, reserved_at = %(now)s
            FROM picked, found, held
            WHERE card_key.id = picked.id AND found.found + held.held >= %(quantity)s
            RETURNING card_key.id
        )
        SELECT held.held, found.found, reserved.id FROM held, found LEFT JOIN reserved ON true
    """
        ).format(
            table=TABLE,
            reserved=RESERVED,
            picked=picked(delivery_order, limit=sql.SQL("GREATEST(%(quantity)s - (SELECT held FROM held), 0)")),
        )
    )


@functools.cache
def reserve_along_with(delivery_order: str, write: str, also: tuple[str, ...] = ()) -> str:
    """``reserve`` for a row the caller writes in the same statement: ``write`` (an
    ``INSERT … SELECT … FROM stock WHERE stock.found >= %(quantity)s RETURNING id``, where
    ``stock`` has the column ``found``) runs only when enough keys were found, the keys are
    reserved only when it wrote its row, and ``also`` (CTEs that may read ``written``) run with
    them. Returns the written row's id, or NULL (too few keys: nothing written)."""
    return text(
        sql.SQL(
            """
        WITH {picked},
        written AS (
            {write} RETURNING id
        ),
        reserved AS (
            UPDATE {table} AS card_key
            SET status = {reserved}, reserved_for = %(reference)s, reserved_until = %(until)s, reserved_at = %(now)s
            FROM picked WHERE card_key.id = picked.id AND EXISTS (SELECT 1 FROM written)
            RETURNING card_key.id
        ){also}
        SELECT (SELECT id FROM written)
    """
        ).format(
            picked=picked(delivery_order),
            write=sql.SQL(write).format(stock=sql.SQL("(SELECT count(*) AS found FROM picked) AS stock")),
            table=TABLE,
            reserved=RESERVED,
            also=sql.SQL("").join(sql.SQL(",\n        ") + sql.SQL(cte) for cte in also),
        )
    )


HOLD = text(
    sql.SQL(
        "UPDATE {table} SET reserved_until = NULL WHERE reserved_for = %s AND status = {reserved} RETURNING id"
    ).format(table=TABLE, reserved=RESERVED)
)


@functools.cache
def sell(*, by_product: bool, all_or_nothing: bool, returning: str | None = None) -> str:
    """Mark the keys reserved for ``%(reference)s`` (of ``%(product)s`` when ``by_product``)
    sold at ``%(now)s``, all or none of at least ``%(at_least)s`` when ``all_or_nothing``;
    ``RETURNING`` the key's columns, or ``returning``."""
    product = sql.SQL("AND product_id = %(product)s") if by_product else sql.SQL("")
    enough = (
        sql.SQL(
            "AND (SELECT count(*) FROM {table} WHERE reserved_for = %(reference)s AND status = {reserved} {product})"
            " >= %(at_least)s"
        ).format(table=TABLE, reserved=RESERVED, product=product)
        if all_or_nothing
        else sql.SQL("")
    )
    returned = (
        sql.SQL(returning)
        if returning
        else sql.SQL(", ").join(sql.Identifier(TABLE_NAME, field.column) for field in CardKey._meta.concrete_fields)
    )
    return text(
        sql.SQL(
            """
        UPDATE {table} SET status = {sold}, sold_at = %(now)s, sold_to = %(reference)s, reserved_until = NULL
        WHERE reserved_for = %(reference)s AND status = {reserved} {product} {enough}
        RETURNING {returned}
    """
        ).format(table=TABLE, sold=SOLD, reserved=RESERVED, product=product, enough=enough, returned=returned)
    )


@functools.cache
def sell_along_with(write: str) -> str:
    """``sell`` (by product, all or nothing) for rows the caller writes in the same statement:
    ``write`` reads the CTE ``sold`` (the sold keys' ``id``). Returns what ``write`` returns."""
    return text(
        sql.SQL("WITH sold AS ({sell}) {write}").format(
            sell=sql.SQL(sell(by_product=True, all_or_nothing=True, returning="id")), write=sql.SQL(write)
        )
    )


# How many keys of a product (``%s``) are on sale.
# Which of the fingerprints (one comma-joined ``%s``: one parameter, not 100,000) are already
# in stock, through the unique index.
EXISTING_FINGERPRINTS = text(
    sql.SQL("SELECT fingerprint FROM {table} WHERE fingerprint = ANY(string_to_array(%s, ','))").format(table=TABLE)
)

AVAILABLE_COUNT = text(
    sql.SQL("SELECT count(*) FROM {table} WHERE product_id = %s AND status = {available}").format(
        table=TABLE, available=AVAILABLE
    )
)


@functools.cache
def custom_fields() -> str:
    """A product's (``%s``) custom fields, whole rows, in display order."""
    return text(
        sql.SQL("SELECT {columns} FROM {table} f WHERE f.product_id = %s ORDER BY f.sort_order, f.id").format(
            columns=sql.SQL(select_list(ProductCustomField, "f")),
            table=sql.Identifier(ProductCustomField._meta.db_table),
        )
    )


# The models' Meta.ordering, as columns.
IMAGE_ORDER = FIELD_ORDER = ("sort_order", "id")


@functools.cache
def product_page() -> str:
    """The product page's product ``%(product)s`` if it is on the shelf in an active category:
    its columns, its category's, its reusable key's (NULLs when it has none), its available keys
    counted, then its images' and its custom fields' columns, one array each. One statement
    where the ORM built three (the product joined, two prefetches) and the count was a fourth."""
    return text(
        sql.SQL(
            """
        SELECT {product}, {category}, {reusable},
            (SELECT count(*) FROM {keys} k WHERE k.product_id = p.id AND k.status = {available}),
            images.*, fields.*
        FROM {products} p
        JOIN {categories} c ON c.id = p.category_id
        LEFT JOIN {reusables} r ON r.product_id = p.id
        CROSS JOIN LATERAL (SELECT {image_columns} FROM {images} i WHERE i.product_id = p.id) images
        CROSS JOIN LATERAL (SELECT {field_columns} FROM {fields} f WHERE f.product_id = p.id) fields
        WHERE p.id = %(product)s AND p.is_on_shelf AND c.is_active
        """
        ).format(
            product=sql.SQL(select_list(Product, "p")),
            category=sql.SQL(select_list(Category, "c")),
            reusable=sql.SQL(select_list(ReusableCardKey, "r")),
            keys=TABLE,
            available=AVAILABLE,
            products=sql.Identifier(Product._meta.db_table),
            categories=sql.Identifier(Category._meta.db_table),
            reusables=sql.Identifier(ReusableCardKey._meta.db_table),
            image_columns=sql.SQL(select_arrays(ProductImage, "i", IMAGE_ORDER)),
            images=sql.Identifier(ProductImage._meta.db_table),
            field_columns=sql.SQL(select_arrays(ProductCustomField, "f", FIELD_ORDER)),
            fields=sql.Identifier(ProductCustomField._meta.db_table),
        )
    )
